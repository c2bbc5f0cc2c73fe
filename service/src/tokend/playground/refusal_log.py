"""`RefusalLog`: the playground's log lines for refusals a client retries (busy, still loading: 5xx but not
500), at most one a path and status every `INTERVAL_SECONDS`, the next one saying how many were left out.

Why: each such refusal was a warning line of its own. Beside 40 clients sending spinning chat templates the
playground refused ~270 requests a second, and wrote each as a JSON line to stderr: the operator reads the
same line thousands of times, and each write gives up the GIL, which a thread then waits for behind the
render holding it (server.py: GIL_SWITCH_SECONDS).

    log = RefusalLog(logging.getLogger("tokend.playground"))
    log.refused("/api/v1/count_chat", 503, "the chat template was not rendered: ...")   # logged
    log.refused("/api/v1/count_chat", 503, "the chat template was not rendered: ...")   # counted, not logged

Not handled: 500s (a bug or a broken model: each is logged with its traceback by the caller) and 4xx (the
client's mistake: never logged).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["INTERVAL_SECONDS", "MAX_KEYS", "OTHER_PATHS", "RefusalLog"]

# A path's refusals of one status are logged at most once in this many seconds.
INTERVAL_SECONDS = 10.0
# (path, status) pairs kept apart at most; a refusal of any other path counts under (OTHER_PATHS, its status). The
# path is the client's text: GET /api/v1/models/<ref> answers 503 while its model loads or the registry cannot be
# read, and each spelling of a ref (percent escapes) is a path of its own, kept for good: one entry each grew
# without end (20,000 paths of ~230 bytes: +9 MB and 20,000 lines; review33).
MAX_KEYS = 64
OTHER_PATHS = "(other paths)"


class RefusalLog:
    """Warning lines for retried refusals, at most one a (path, status) every `interval` seconds (thread-safe;
    past `MAX_KEYS` pairs, one for all other paths of a status).

    >>> import logging
    >>> log = RefusalLog(logging.getLogger("doctest"), interval=60.0)
    >>> [log.refused("/api/v1/count", 503, "busy") for _ in range(3)]
    [True, False, False]
    >>> log.left_out("/api/v1/count", 503)
    2
    """

    def __init__(self, logger: logging.Logger, interval: float = INTERVAL_SECONDS) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[tuple[str, int], tuple[float, int]] = {}  # (path, status) -> (last logged at, left out since)

    def refused(self, path: str, status: int, message: str) -> bool:
        """Note one refusal; log it (True) unless this path's refusals of `status` were logged within the
        interval (False: counted, and named in the next line)."""
        now = time.monotonic()
        key = (path, status)
        with self._lock:
            if key not in self._last and len(self._last) >= MAX_KEYS:
                key = (OTHER_PATHS, status)
            logged_at, left_out = self._last.get(key, (float("-inf"), 0))
            if now - logged_at < self._interval:
                self._last[key] = (logged_at, left_out + 1)
                return False
            self._last[key] = (now, 0)
        more = f" (and {left_out:,} more like it in the last {now - logged_at:.0f} s)" if left_out else ""
        self._logger.warning("playground request %s: %d %s%s", path, status, message, more)
        return True

    def left_out(self, path: str, status: int) -> int:
        """How many refusals of `status` at `path` were counted but not logged since its last line."""
        with self._lock:
            return self._last.get((path, status), (0.0, 0))[1]
