"""Re-reads of a source's catalog asked for by calls that named something it did not list, at most one per
`min_interval` seconds, in a background thread, with a bounded wait for the callers.

Why: a process reads its catalog at start and at each refresh. A deploy that publishes `m@7` and at once sends
calls for `m@7` would get NOT_FOUND (which clients do not retry) from every process that has not refreshed
since — up to a whole reload interval. So a call that misses asks for a re-read and waits for one that
*started after its miss* (one started before may not show the publish), then looks again.

    >>> rechecks = CatalogRechecks(lambda: None, min_interval=1.0, max_waiting=2)
    >>> rechecks.recheck(wait=2.0)       # True: a re-read that started after this call has finished
    True
    >>> rechecks.scans
    1

Bounds, whatever the callers ask for (`m@999999` in a loop): one re-read at a time, a new one at least
`min_interval` seconds after the previous one started; at most `max_waiting` callers wait, each at most `wait`
seconds (then it answers from the catalog it has); more callers are answered at once without waiting. A
re-read that fails is logged and counts as done (the previous catalog stays).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("tokend.registry.registry")  # one logger for everything a registry reports

DEFAULT_MIN_INTERVAL_SECONDS = 1.0
DEFAULT_MAX_WAITING = 2  # as many as wait for loads (version_loads): a worker keeps its other threads


class CatalogRechecks:
    """Runs `rescan()` for callers that missed, rate-limited; `scans` counts the re-reads run."""

    def __init__(
        self,
        rescan: Callable[[], None],
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL_SECONDS,
        max_waiting: int = DEFAULT_MAX_WAITING,
        name: str = "tokend-catalog-recheck",
    ) -> None:
        self._rescan = rescan
        self.min_interval = min_interval
        self.max_waiting = max_waiting
        self._name = name
        self._changed = threading.Condition()
        self._asked = float("-inf")  # the latest miss a re-read must start after
        self._started = float("-inf")  # when the latest re-read started
        self._finished = float("-inf")  # when the latest finished re-read started
        self._waiting = 0
        self._running = False
        self.scans = 0

    def recheck(self, wait: float) -> bool:
        """Wait (at most `wait` s) for a re-read that starts after now: True once one has finished, False when
        none did in time or `max_waiting` callers already wait (then at once)."""
        missed = time.monotonic()
        with self._changed:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            self._asked = max(self._asked, missed)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
            try:
                return self._changed.wait_for(lambda: self._finished >= missed, timeout=wait)
            finally:
                self._waiting -= 1

    def _run(self) -> None:
        while True:
            with self._changed:
                if self._asked < self._started:  # every miss so far is covered by a re-read started after it
                    self._running = False
                    return
                delay = self._started + self.min_interval - time.monotonic()
                if delay <= 0:
                    started = self._started = time.monotonic()
                    self.scans += 1
            if delay > 0:
                time.sleep(delay)
                continue
            try:
                self._rescan()
            except Exception:  # noqa: BLE001 - the callers answer from the catalog they have
                logger.exception("re-reading the catalog for a reference it did not list failed")
            with self._changed:
                self._finished = started
                self._changed.notify_all()
