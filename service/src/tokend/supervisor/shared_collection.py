"""A Prometheus collector that scrapes share: however many arrive, the collector underneath starts at most
once per ``min_interval`` seconds, and every scrape still gets values collected after it arrived.

Summing every worker's metric files (``MultiProcessCollector``) costs the supervisor a few milliseconds of
CPU per scrape, on the cores the workers serve from; bursts of 50 scrapes every 2 s (issue 13, item 8)
made it a tenth of a core, and a flood could make it a whole one. Here one collection runs at a time; the
scrapes that arrive meanwhile wait and share the next one, which starts when the running one ends and
``min_interval`` has passed since it started. A scraper alone, scraping less often than ``min_interval``
(Prometheus: every 15 s by default), never waits; one that scrapes faster waits for the next collection
rather than being answered with values older than its request (so a count read after a call includes
that call). A collection that fails is shared the same way: the scrapes that arrived before it started
get its error (``CollectionFailed``) rather than each running one more failing collection in turn, and
the next scrape after it tries again.

    registry.register(SharedCollection(MultiProcessCollector(None, path=directory), min_interval=0.25))
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["CollectionFailed", "SharedCollection"]


class CollectionFailed(RuntimeError):
    """The collection this scrape shared failed; ``__cause__`` is that collection's error."""


class SharedCollection:
    """``collect()`` of ``collector``, shared by the scrapes that arrive while it runs (see the module)."""

    def __init__(self, collector: Any, *, min_interval: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
        if min_interval < 0:
            raise ValueError(f"min_interval must be >= 0 seconds, got {min_interval}")
        self._collector = collector
        self._min_interval = min_interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # held for a whole collection: later scrapes queue on it
        self._families: list[Any] = []
        self._failure: BaseException | None = None  # the error of the latest collection, if it failed
        self._started_at = float("-inf")
        self.collections = 0  # collections of the collector underneath that finished (failed ones are not counted)
        self.failures = 0  # collections of the collector underneath that raised

    def collect(self) -> Iterator[Any]:
        arrived = self._clock()
        with self._lock:
            if self._started_at >= arrived:  # collected after this scrape arrived: as fresh as its own
                if self._failure is not None:
                    raise CollectionFailed(f"collecting the metrics failed: {self._failure!r}") from self._failure
                return iter(self._families)
            wait = self._started_at + self._min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
            self._started_at = self._clock()
            try:
                families = list(self._collector.collect())
            except BaseException as error:  # even an interrupt: the scrapes queued behind must not get older values
                self._failure = error
                self.failures += 1
                raise
            self._families, self._failure = families, None
            self.collections += 1
            return iter(families)
