"""The hot-reload thread of a worker: ``served.refresh()`` every ``reload_interval`` seconds.

A newly published version (or a moved alias) is loaded in the background and then served to calls
that resolve their reference after that; calls already running keep the LoadedModel they resolved.
A failed refresh is logged and retried at the next tick; it never stops the worker serving.

    reloader = HotReloader(served, models=None, interval=30.0)
    reloader.start()
    ...
    reloader.stop()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from tokend.server.logs import log_event
from tokend.server.served_models import ServedModels

__all__ = ["HotReloader"]

_log = logging.getLogger("tokend.server.reload")


class HotReloader:
    def __init__(self, served: ServedModels, *, models: Sequence[str] | None, interval: float) -> None:
        self._served = served
        self._models = models
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokend-hot-reload", daemon=True)

    def start(self) -> None:
        if self._interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._served.refresh(self._models)
            except Exception as exc:  # an unreachable registry must not kill the thread
                log_event(_log, "registry_refresh_failed", level=logging.WARNING, error=f"{type(exc).__name__}: {exc}")
