"""`HotReload`: the registry's refresh — new versions, alias moves, removals, re-verification, switches of the
moving references — plus re-reads of the catalog for references it did not list and unloading the versions
nobody needs. A mixin of `Registry` only: it uses the registry's source, catalog, loader and moving references.

    registry = Registry.open("models/")
    report = registry.refresh()                    # RefreshReport(added, removed, alias_moves, failed, damaged, loading)
    registry.recheck("m@8", 2.0)                   # not listed: True once a re-read started now ended (m@8 may be there)
    registry.unload_unused(300.0, max_pinned=4)    # [LoadedModel] dropped: nobody serves, pins or keeps them
    registry.start_polling(30.0)                   # refresh() every 30 s in a daemon thread
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from tokend.errors import ModelNotFoundError, RegistryError, TokendError
from tokend.registry.catalog import Catalog
from tokend.registry.catalog_rechecks import worth_a_recheck
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.polling import Poller
from tokend.registry.reports import AliasMove, LoadedModel, RefreshReport
from tokend.registry.version_loads import Load

if TYPE_CHECKING:
    from tokend.registry.catalog_rechecks import CatalogRechecks
    from tokend.registry.model_loader import ModelLoader
    from tokend.registry.moving_references import MovingReferences
    from tokend.registry.source import Source
    from tokend.registry.unused_versions import UnusedVersions

__all__ = ["HotReload"]

logger = logging.getLogger("tokend.registry.registry")  # one logger for everything a registry reports

# How long refresh() waits for the loads that switch moving references: every directory load measured is
# below it (o200k_base cold: 0.31 s), and a stalled HTTP load holds the reload thread (and a draining
# worker stopping that thread) no longer than this; the switch then happens when the load ends.
_SWITCH_WAIT_SECONDS = 2.0


class HotReload:
    """Mixin of `Registry`: `refresh`, `recheck`, `unload_unused`, `start_polling`, `stop_polling`."""

    # The registry's state this mixin uses (set by Registry.__init__).
    _source: Source
    _catalog: Catalog
    _lock: threading.RLock
    _refresh_lock: threading.Lock  # one refresh at a time
    _catalog_lock: threading.Lock  # one catalog read and swap at a time (refresh or recheck)
    _models: ModelLoader
    _moving: MovingReferences
    _unused: UnusedVersions
    _rechecks: CatalogRechecks
    _served_at_last_sweep: set[ModelVersionRef]  # by moving references, at the last unload_unused
    _poller: Poller | None

    def refresh(self) -> RefreshReport:
        """Re-read the source: pick up new versions and alias moves, drop removed versions, re-verify the
        files of loaded ones (a damaged file is reported; the verified copy keeps serving), forget failures
        that may have been fixed, and load the new targets of moving references (waiting up to
        _SWITCH_WAIT_SECONDS; slower ones switch when they finish). Never raises; see the report."""
        with self._refresh_lock:
            read = self._read_catalog("not refreshed, keeping the previous catalog")
            if isinstance(read, TokendError):
                return RefreshReport(error=str(read))
            previous, catalog = read
            old_versions = _versions(previous)
            new_versions = _versions(catalog)
            self._models.failures.after_refresh(present=new_versions, manifest_digest=self._models.manifest_digest_now)
            damaged: dict[str, str] = {}
            for model in self._models.loaded():
                vref = ModelVersionRef(model.name, model.version)
                error = self._models.recheck(vref)
                if error is not None:
                    damaged[str(vref)] = str(error)
                    logger.error(
                        "%s on %s no longer verifies; still serving the copy verified when it was loaded: %s",
                        vref, self.location, error,
                    )
            switches = self._start_switches()
            deadline = time.monotonic() + _SWITCH_WAIT_SECONDS
            for load in switches:
                load.done.wait(max(0.0, deadline - time.monotonic()))
            report = RefreshReport(
                added=sorted(str(v) for v in new_versions - old_versions),
                removed=sorted(str(v) for v in old_versions - new_versions),
                alias_moves=_alias_moves(previous, catalog),
                failed={str(load.key): str(load.error) for load in switches if load.done.is_set() and load.error},
                damaged=damaged,
                loading=sorted(str(load.key) for load in switches if not load.done.is_set()),
            )
            if report.changed:
                logger.info(
                    "registry %s refreshed: added %s, removed %s, alias moves %s, failed %s, damaged %s, loading %s",
                    self.location, report.added, report.removed, [str(m) for m in report.alias_moves],
                    list(report.failed), list(damaged), report.loading,
                )
            return report

    def _read_catalog(self, failed: str) -> tuple[Catalog, Catalog] | TokendError:
        """Read the source's catalog and swap it in (`_adopt`): (the previous catalog, the new one), or the error
        (logged as `failed`; the previous catalog stays). One read and swap at a time, for refresh and recheck."""
        with self._catalog_lock:
            try:
                catalog = self._source.scan()
            except TokendError as error:
                logger.warning("registry %s %s: %s", self.location, failed, error)
                return error
            return self._adopt(catalog), catalog

    def _adopt(self, catalog: Catalog) -> Catalog:
        """Swap in `catalog` (read just now), unloading the versions that left the source; returns the previous one."""
        with self._lock:
            previous = self._catalog
            removed = _versions(previous) - _versions(catalog)
            self._models.drop(removed)
            self._unused.forget(removed)
            self._moving.retain(_versions(catalog))
            self._catalog = catalog
        return previous

    def recheck(self, ref: str, wait: float) -> bool:
        """A caller's reference `ref` was not in the catalog: wait up to `wait` s for a re-read of the source that
        starts after now (at most one a second, in the background; `catalog_rechecks`). True once one has
        finished (resolve again); False when none did in time, enough callers of its kind wait already, or no
        re-read could list it (`worth_a_recheck`: a version far above the newest, say) — then at once."""
        kind = worth_a_recheck(self._catalog, ref)
        return kind is not None and self._rechecks.recheck(wait, kind)

    def _recheck_catalog(self) -> None:
        read = self._read_catalog("not re-read for a reference it did not list")
        if isinstance(read, TokendError):
            return
        previous, catalog = read
        added = sorted(str(vref) for vref in _versions(catalog) - _versions(previous))
        moves = _alias_moves(previous, catalog)
        if added or moves:
            logger.info(
                "registry %s re-read for a reference it did not list: added %s, alias moves %s",
                self.location, added, [str(move) for move in moves],
            )  # fmt: skip

    def unload_unused(
        self, idle_after: float, *, max_pinned: int, keep: Collection[str] = ()
    ) -> list[LoadedModel]:
        """Drop the loaded versions nobody needs (`registry` and `unused_versions` docstrings) and return them. Calls
        holding one finish on it; the next call for one loads it again. `keep`: references whose versions stay
        (a server's --models). Logs one DEBUG line per version (the server logs its own INFO line)."""
        # What moving references served at the previous call, and since: a call may have resolved one to its old
        # version just before it switched, and load it a moment later. So a version a moving reference moved away
        # from is unloaded one call of this method after the first that saw it move (a refresh interval or more),
        # never in the middle of a switch.
        served = {ModelVersionRef(name, version) for (name, _), version in self._moving.items()}
        needed = served | self._served_at_last_sweep
        for ref in [*keep, *(name if alias is None else f"{name}@{alias}" for name, alias in self._moving.keys())]:
            try:
                serving, switch_to = self._resolve(ref)
            except ModelNotFoundError:
                continue  # an alias removed, or a kept reference not published (any more)
            needed.update(vref for vref in (serving, switch_to) if vref is not None)
        self._served_at_last_sweep = served | {ModelVersionRef(name, version) for (name, _), version in self._moving.items()}
        for name, entry in self._catalog.entries.items():
            needed.add(ModelVersionRef(name, entry.latest_version))
            needed.update(ModelVersionRef(name, version) for version in entry.aliases.values())
        with self._lock:
            loaded = {ModelVersionRef(model.name, model.version): model for model in self._models.loaded()}
            unload = self._unused.pick(loaded, needed=needed, idle_after=idle_after, max_pinned=max_pinned)
            self._models.drop(unload)
        for vref in unload:
            logger.debug(
                "unloaded %s from %s: no moving or kept reference serves it and no call pinned it in the last %g s "
                "(or %d versions pinned more recently are kept); the next call for it loads it again",
                vref, self.location, idle_after, max_pinned,
            )  # fmt: skip
        return [loaded[vref] for vref in unload]

    def _start_switches(self) -> list[Load]:
        """Start loading the new target of every moving reference that serves a version now."""
        loads: dict[ModelVersionRef, Load] = {}  # latest and an alias may move to the same version
        for name, alias in self._moving.keys():
            try:
                switch_to = self._resolve(name if alias is None else f"{name}@{alias}")[1]
            except ModelNotFoundError:
                continue  # the alias was removed
            if switch_to is not None and switch_to not in loads:
                load = self._models.start(switch_to)
                if load is not None:
                    loads[switch_to] = load
        return list(loads.values())

    def start_polling(self, interval: float, *, on_report: Callable[[RefreshReport], None] | None = None) -> None:
        """Call `refresh()` every `interval` seconds in a daemon thread until `stop_polling()`."""
        with self._lock:
            if self._poller is not None:
                raise RegistryError("this registry is already polling; call stop_polling() first")
            self._poller = Poller(self.refresh, interval, on_report=on_report, name=f"tokend-registry-poll {self.location}")
            self._poller.start()

    def stop_polling(self) -> None:
        with self._lock:
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop()


def _versions(catalog: Catalog) -> set[ModelVersionRef]:
    return {ModelVersionRef(name, version) for name, entry in catalog.entries.items() for version in entry.versions}


def _alias_moves(old: Catalog, new: Catalog) -> list[AliasMove]:
    moves = []
    for name in sorted(set(old.entries) | set(new.entries)):
        before = old.entries[name].aliases if name in old.entries else {}
        after = new.entries[name].aliases if name in new.entries else {}
        for alias in sorted(set(before) | set(after)):
            if before.get(alias) != after.get(alias):
                moves.append(AliasMove(name, alias, before.get(alias), after.get(alias)))
    return moves
