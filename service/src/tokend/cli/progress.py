"""A dependency-free progress bar on stderr, for `tokend train`.

    >>> import io
    >>> bar = ProgressBar("merges", stream=io.StringIO())   # stderr by default
    >>> bar(3, 10)                # the trainer's progress(done_merges, total_merges) callback
    >>> bar.finish()
    >>> bar.stream.getvalue().split()[:4]
    ['[#########.....................]', '3/10', 'merges', '30.0%']


On a terminal it redraws one line (at most ~10 times a second); when stderr is a file or pipe (CI logs,
tests) it prints a plain line every 10 % so logs stay short. Not handled: ETA estimation, nested bars.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30
_REDRAW_SECONDS = 0.1


class ProgressBar:
    def __init__(self, label: str, *, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._last: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        if self.interactive:
            now = time.monotonic()
            if now - self._last_draw >= _REDRAW_SECONDS or done >= total:
                self._last_draw = now
                self.stream.write("\r" + self._line(done, total))
                self.stream.flush()
        else:
            decile = (10 * done // total) if total else 10
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(self._line(done, total) + "\n")
                self.stream.flush()

    def finish(self) -> None:
        if self.interactive and self._last is not None:
            self.stream.write("\r" + self._line(*self._last) + "\n")
            self.stream.flush()

    def _line(self, done: int, total: int) -> str:
        fraction = done / total if total else 1.0
        filled = int(_WIDTH * fraction)
        elapsed = time.monotonic() - self.started
        return f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {done}/{total} {self.label} {100 * fraction:5.1f}% {elapsed:6.1f}s"
