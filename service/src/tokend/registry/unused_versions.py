"""Loaded versions nobody needs any more: which ones to unload, so a process holds what its callers use, not
every version ever published.

A loaded version stays while something may ask for it at once — the registry passes these as `needed`:
the version each moving reference (`name`, `name@alias`) serves now and the one it is switching to, the
catalog's latest of every name and every alias target, and what the caller keeps (a server's `--models`).
Any other loaded version was reached by a pinned call (`name@7`) or by a moving reference that has moved on
since; it stays while pinned calls used it within `idle_after` seconds, and of those at most `max_pinned`,
the most recently used — beyond them, only the ones no call pinned since the previous `pick` (a refresh
interval ago) go: a version called between two refreshes is in memory now anyway, and unloading it would only
make its next call load it again. The rest are unloaded: dropped from the registry's cache, their Encoding freed once
the calls holding it end; a later `name@7` loads it again.

    >>> unused = UnusedVersions()
    >>> v1, v2, v3 = (ModelVersionRef("m", version) for version in (1, 2, 3))
    >>> unused.used(v1, now=100.0)                    # a call pinned m@1 at t=100
    >>> unused.pick([v1, v2, v3], needed={v3}, idle_after=300.0, max_pinned=4, now=150.0)
    [ModelVersionRef(name='m', version=2)]
    >>> unused.pick([v1, v3], needed={v3}, idle_after=300.0, max_pinned=4, now=401.0)   # m@1 idle 301 s
    [ModelVersionRef(name='m', version=1)]

Only pinned calls count as use: a version reached through `name` is needed while `name` serves it and not an
instant longer, so a registry that publishes every second keeps two versions of a model, not the versions of the
last `idle_after` seconds. Not handled here: what is loaded or needed (the registry knows), unloading (its loader).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable

from tokend.registry.model_ref import ModelVersionRef


class UnusedVersions:
    """Thread-safe record of when each version was last pinned by a call, and the choice of what to unload."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_used: dict[ModelVersionRef, float] = {}  # ModelVersionRef -> time.monotonic() of its last pinned call
        self._last_pick: float | None = None  # when `pick` last ran

    def used(self, vref: ModelVersionRef, *, now: float | None = None) -> None:
        """A call pinned `vref` (on every such call: one dict store, no lock)."""
        self._last_used[vref] = time.monotonic() if now is None else now

    def pick(
        self,
        loaded: Iterable[ModelVersionRef],
        *,
        needed: Collection[ModelVersionRef],
        idle_after: float,
        max_pinned: int,
        now: float | None = None,
    ) -> list[ModelVersionRef]:
        """The loaded versions to unload now (sorted), and forgets them. `idle_after` > 0 seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last_used = dict(self._last_used)
            previous_pick, self._last_pick = self._last_pick, now
        kept: list[tuple[float, ModelVersionRef]] = []  # pinned within idle_after: (last use, version)
        unload: list[ModelVersionRef] = []
        for vref in loaded:
            if vref in needed:
                continue
            used_at = last_used.get(vref)
            if used_at is not None and now - used_at < idle_after:
                kept.append((used_at, vref))
            else:
                unload.append(vref)
        kept.sort(key=lambda item: item[0], reverse=True)  # most recently used first
        # Beyond max_pinned, not the versions pinned since the previous pick: 6 versions pinned in turn against a cap
        # of 4 and refreshes every 0.2 s made 116 loads in 20 s (each ~0.1-0.2 s of CPU) where 7 were needed.
        unload += [vref for used_at, vref in kept[max(0, max_pinned):] if previous_pick is None or used_at < previous_pick]
        self.forget(unload)
        return sorted(unload)

    def forget(self, vrefs: Iterable[ModelVersionRef]) -> None:
        """Versions unloaded, or gone from the source: their next pinned call starts a new record."""
        with self._lock:
            for vref in vrefs:
                self._last_used.pop(vref, None)
