"""Re-reads of a source's catalog asked for by calls that named something it did not list, at most one per
`min_interval` seconds, in a background thread, with a bounded wait for the callers.

Why: a process reads its catalog at start and at each refresh. A deploy that publishes `m@7` and at once sends
calls for `m@7` would get NOT_FOUND (which clients do not retry) from every process that has not refreshed
since — up to a whole reload interval. So a call that misses asks for a re-read and waits for one that
*started after its miss* (one started before may not show the publish), then looks again.

    >>> rechecks = CatalogRechecks(lambda: None, min_interval=1.0)
    >>> from tokend.registry.catalog import CatalogEntry
    >>> catalog = Catalog.build({"m": CatalogEntry({7: None}, {})})
    >>> worth_a_recheck(catalog, "m@8"), worth_a_recheck(catalog, "m@999999")   # 8..7+64 could be published
    ('newer version', None)
    >>> rechecks.recheck(wait=2.0, kind=NEWER_VERSION)   # True: a re-read that started after this call has finished
    True
    >>> rechecks.scans
    1

Bounds, whatever the callers ask for (`m@999999` in a loop): one re-read at a time, a new one at least
`min_interval` seconds after the previous one started; at most `max_waiting[kind]` callers of each kind wait, each
at most `wait` seconds (then it answers from the catalog it has); more callers are answered at once without
waiting. A re-read that fails is logged and counts as done (the previous catalog stays).

Which misses may wait (`worth_a_recheck`), so that a flood of references nothing will publish cannot take the
places of a call for a version published a moment ago:
- `m@N` of a listed model with N above its newest listed version, by at most VERSIONS_AHEAD: NEWER_VERSION,
  2 places. A version is published as the next number (`registry publish`), so a caller that just published one
  names newest + 1 (or a few more, when several were published since this process last read the catalog).
- a name the catalog does not list, or an alias of a listed model it does not list: UNLISTED_NAME, 1 place of its
  own (a model or alias created a moment ago is found; a flood of made-up names holds that one place only).
- anything else — `m@N` more than VERSIONS_AHEAD above the newest, `m@N` at or below the newest (published
  versions only grow; one removed does not come back), a malformed reference: None, NOT_FOUND at once, no re-read.
Not handled: a flood of `m@newest+1` (what a legitimate caller would name too) still takes the 2 places; a version
published with an explicit number far above the newest is found at the next refresh, not at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from tokend.registry.catalog import Catalog
from tokend.registry.model_ref import parse_model_ref

logger = logging.getLogger("tokend.registry.registry")  # one logger for everything a registry reports

DEFAULT_MIN_INTERVAL_SECONDS = 1.0
NEWER_VERSION = "newer version"
UNLISTED_NAME = "unlisted name or alias"
# Callers of each kind that may wait at once: as many as wait for loads (version_loads) for the versions a deploy
# just published, one for names and aliases; a worker keeps its other handler threads.
DEFAULT_MAX_WAITING: Mapping[str, int] = {NEWER_VERSION: 2, UNLISTED_NAME: 1}
# How far above a model's newest listed version a reference may name one that a re-read could find: more versions
# than a publisher makes between two refreshes (30 s by default), far fewer than a made-up number.
VERSIONS_AHEAD = 64


def worth_a_recheck(catalog: Catalog, ref: str) -> str | None:
    """The kind of a reference `catalog` does not list that a re-read could find (NEWER_VERSION, UNLISTED_NAME),
    or None when none could (the module docstring's rule)."""
    try:
        parsed = parse_model_ref(ref)
    except ValueError:
        return None
    entry = catalog.entries.get(parsed.name)
    if entry is None or parsed.alias is not None:
        return UNLISTED_NAME
    if parsed.version is not None and entry.latest_version < parsed.version <= entry.latest_version + VERSIONS_AHEAD:
        return NEWER_VERSION
    return None


class CatalogRechecks:
    """Runs `rescan()` for callers that missed, rate-limited; `scans` counts the re-reads run. `max_waiting`:
    callers that may wait at once, by kind (a number: the same for every kind)."""

    def __init__(
        self,
        rescan: Callable[[], None],
        *,
        min_interval: float = DEFAULT_MIN_INTERVAL_SECONDS,
        max_waiting: Mapping[str, int] | int = DEFAULT_MAX_WAITING,
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
        self._waiting: dict[str, int] = {}  # kind -> callers waiting
        self._running = False
        self.scans = 0

    def recheck(self, wait: float, kind: str = NEWER_VERSION) -> bool:
        """Wait (at most `wait` s) for a re-read that starts after now: True once one has finished, False when
        none did in time or `max_waiting` callers of `kind` already wait (then at once)."""
        missed = time.monotonic()
        most = self.max_waiting if isinstance(self.max_waiting, int) else self.max_waiting.get(kind, 0)
        with self._changed:
            if wait <= 0 or self._waiting.get(kind, 0) >= most:
                return False
            self._waiting[kind] = self._waiting.get(kind, 0) + 1
            self._asked = max(self._asked, missed)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
            try:
                return self._changed.wait_for(lambda: self._finished >= missed, timeout=wait)
            finally:
                self._waiting[kind] -= 1

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
