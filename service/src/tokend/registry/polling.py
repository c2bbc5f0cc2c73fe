"""The hot-reload poller: a daemon thread that calls a refresh function every `interval` seconds.

    poller = Poller(registry.refresh, 30.0, on_report=print)   # prints a RefreshReport every 30 s
    poller.start()
    ...
    poller.stop()                   # waits for a refresh in progress to finish

A refresh that raises (it should not: `Registry.refresh` reports problems instead) is logged and the
loop goes on, so one bad cycle never ends hot reload. Not handled: file-system notifications (inotify);
polling works the same on local disks, network mounts and HTTP.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

logger = logging.getLogger(__name__)


class Poller:
    """Calls `refresh()` every `interval` seconds until `stop()`; `on_report(result)` after each call."""

    def __init__(
        self,
        refresh: Callable[[], Any],
        interval: float,
        *,
        on_report: Callable[[Any], None] | None = None,
        name: str = "tokend-registry-poll",
    ) -> None:
        if not interval > 0:
            raise ValueError(f"polling interval must be > 0 seconds, got {interval!r}; use 0 only to mean 'no polling' in settings")
        self._refresh = refresh
        self._interval = float(interval)
        self._on_report = on_report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end and wait for a refresh in progress to finish (at most `timeout` s)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                result = self._refresh()
                if self._on_report is not None:
                    self._on_report(result)
            except Exception:  # noqa: BLE001 - keep polling; the next cycle may succeed
                logger.exception("registry refresh failed; will retry in %.1f s", self._interval)
