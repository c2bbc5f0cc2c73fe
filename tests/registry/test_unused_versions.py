"""Unloading loaded versions nobody needs (`Registry.unload_unused`, `unused_versions`) and re-reading the catalog
for references it does not list (`Registry.recheck`, `catalog_rechecks`), on real directory registries."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.registry import Registry
from tokend.registry.catalog_rechecks import NEWER_VERSION, UNLISTED_NAME, CatalogRechecks, worth_a_recheck
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.unused_versions import UnusedVersions

from .trained_models import publish_trained


@pytest.fixture
def publish_small(trained_small):
    """`publish_small(registry, number)`: the small trained model as m@number (versions share one Encoding)."""
    return lambda registry, number: publish_trained(registry, "m", trained_small, version=number)


def _loaded(registry: Registry) -> set[int]:
    return {model.version for model in registry.loaded_models() if model.name == "m"}


def test_pick_keeps_what_is_needed_and_recently_pinned_up_to_the_cap():
    unused = UnusedVersions()
    v = {number: ModelVersionRef("m", number) for number in range(1, 6)}
    for number, at in ((1, 10.0), (2, 20.0), (3, 30.0)):
        unused.used(v[number], now=at)
    # needed: 5; pinned recently: 3, 2, 1 (newest first), cap 2 -> 1 goes; 4 never pinned -> goes.
    assert unused.pick(v.values(), needed={v[5]}, idle_after=100.0, max_pinned=2, now=40.0) == [v[1], v[4]]
    # 2 idle for 100 s now: goes, whatever the cap; 3 stays.
    assert unused.pick([v[2], v[3], v[5]], needed={v[5]}, idle_after=100.0, max_pinned=2, now=120.0) == [v[2]]
    # A needed version is never picked, however long unused.
    assert unused.pick([v[5]], needed={v[5]}, idle_after=1.0, max_pinned=0, now=1e9) == []
    # Cap 0: every version kept only for pinned calls goes at once.
    assert unused.pick([v[3]], needed=set(), idle_after=100.0, max_pinned=0, now=121.0) == [v[3]]


def test_a_switch_keeps_the_old_version_until_the_next_sweep_and_aliases_keep_theirs(registry, publish_small):
    for number in (1, 2):
        publish_small(registry, number)
    registry.set_alias("m", "stable", 1)
    assert registry.load("m").version == 2 and registry.load("m@stable").version == 1
    assert registry.load("m@1").version == 1  # pinned too
    assert registry.unload_unused(0.001, max_pinned=4) == []  # a sweep while "m" serves m@2
    publish_small(registry, 3)
    registry.refresh()  # loads m@3 (the new latest) and switches "m" to it
    # m@2 is what "m" served at the previous sweep: kept (a call may have resolved "m" to it a moment ago);
    # m@1 was pinned long enough ago (0.001 s) to go, but the alias serves it.
    time.sleep(0.01)
    assert registry.unload_unused(0.001, max_pinned=4) == []
    # One sweep later m@2 goes; m@1 (the alias's target) and m@3 (the latest) stay.
    assert [model.version for model in registry.unload_unused(0.001, max_pinned=4)] == [2]
    assert _loaded(registry) == {1, 3}
    assert registry.load("m@2").version == 2  # loads again on demand
    assert _loaded(registry) == {1, 2, 3}


def test_kept_references_and_recent_pins_stay(registry, publish_small):
    for number in (1, 2, 3):
        publish_small(registry, number)
    for ref in ("m@1", "m@2", "m"):
        registry.load(ref)
    assert [model.version for model in registry.unload_unused(3600.0, max_pinned=0, keep=["m@1"])] == [2]
    assert _loaded(registry) == {1, 3}


def test_rechecks_are_rate_limited_and_bound_their_waiters():
    release, scans = threading.Event(), []

    def rescan() -> None:
        scans.append(time.monotonic())
        release.wait(10)

    rechecks = CatalogRechecks(rescan, min_interval=0.2, max_waiting=2)
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(rechecks.recheck(5.0))) for _ in range(2)]
    for thread in waiters:
        thread.start()
    deadline = time.monotonic() + 10
    while not scans and time.monotonic() < deadline:
        time.sleep(0.01)
    while sum(rechecks._waiting.values()) < 2 and time.monotonic() < deadline:  # both wait on the scan in progress
        time.sleep(0.01)
    assert rechecks.recheck(5.0) is False  # a third caller: answered at once, no wait
    release.set()
    for thread in waiters:
        thread.join(10)
    # The two started before the first scan began... or during it: each gets a scan started after its miss.
    assert results == [True, True]
    # A flood: many callers, one scan at a time, at least min_interval apart.
    started, stop = time.monotonic(), time.monotonic() + 1.0
    flood = [threading.Thread(target=lambda: [rechecks.recheck(0.5) for _ in iter(lambda: time.monotonic() < stop, False)])
             for _ in range(8)]  # fmt: skip
    for thread in flood:
        thread.start()
    for thread in flood:
        thread.join(30)
    elapsed = time.monotonic() - started
    assert 1 <= len(scans) - 1 <= elapsed / 0.2 + 2, (len(scans), elapsed)
    assert all(later - earlier >= 0.2 for earlier, later in zip(scans, scans[1:]))


def test_recheck_finds_a_version_published_by_another_process(registry_dir, publish_small):
    writer = Registry.open(registry_dir, create=True)
    publish_small(writer, 1)
    reader = Registry.open(registry_dir)
    publish_small(writer, 2)  # another process: the reader's catalog does not list it
    assert [model.latest_version for model in reader.list_models()] == [1]
    assert reader.recheck("m@2", 2.0) is True
    assert reader.resolve("m@2") == ModelVersionRef("m", 2)
    assert reader.load("m@2").version == 2


def test_only_references_a_re_read_could_list_wait_for_one(registry_dir, publish_small):
    """A version far above the newest, or at or below it, is answered at once without a re-read; the next versions
    of a listed model and unlisted names or aliases wait, each kind in places of its own."""
    writer = Registry.open(registry_dir, create=True)
    publish_small(writer, 1)
    reader = Registry.open(registry_dir)
    catalog = reader._catalog
    kinds = {ref: worth_a_recheck(catalog, ref) for ref in ("m@2", "m@65", "m@66", "m@999999", "m@1", "m@canary", "other")}
    assert kinds == {"m@2": NEWER_VERSION, "m@65": NEWER_VERSION, "m@66": None, "m@999999": None, "m@1": None,
                     "m@canary": UNLISTED_NAME, "other": UNLISTED_NAME}  # fmt: skip
    assert reader.recheck("m@999999", 5.0) is False and reader._rechecks.scans == 0  # no re-read, no wait
    publish_small(writer, 2)
    assert reader.recheck("m@2", 5.0) is True and reader._rechecks.scans == 1


def test_each_kind_of_miss_waits_in_places_of_its_own():
    release, scans = threading.Event(), []
    rechecks = CatalogRechecks(lambda: (scans.append(1), release.wait(10)), min_interval=0.0)
    names = threading.Thread(target=rechecks.recheck, args=(5.0, UNLISTED_NAME))
    names.start()
    deadline = time.monotonic() + 10
    while rechecks._waiting.get(UNLISTED_NAME, 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rechecks.recheck(5.0, UNLISTED_NAME) is False  # the one place for names is taken: at once
    versions = [threading.Thread(target=rechecks.recheck, args=(5.0, NEWER_VERSION)) for _ in range(2)]
    for thread in versions:
        thread.start()
    while rechecks._waiting.get(NEWER_VERSION, 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rechecks._waiting == {UNLISTED_NAME: 1, NEWER_VERSION: 2}
    assert rechecks.recheck(0.0, NEWER_VERSION) is False  # no time left: no wait
    release.set()
    for thread in [names, *versions]:
        thread.join(10)


def test_the_cap_spares_versions_pinned_since_the_previous_pick():
    """Six versions pinned in turn between refreshes, cap 4: before, each pick dropped the two least recently pinned
    and the next turn loaded them again. A version pinned since the previous pick is in memory anyway: it stays."""
    unused = UnusedVersions()
    v = [ModelVersionRef("m", number) for number in range(1, 7)]
    assert unused.pick(v, needed=set(), idle_after=300.0, max_pinned=4, now=0.0) == v  # never pinned: all go
    for at, vref in enumerate(v, start=1):
        unused.used(vref, now=float(at))  # pinned at 1..6, after the pick at 0
    assert unused.pick(v, needed=set(), idle_after=300.0, max_pinned=4, now=10.0) == []
    for at, vref in zip((11.0, 12.0, 13.0, 14.0), v[2:]):  # only 3..6 pinned again before the next pick
        unused.used(vref, now=at)
    assert unused.pick(v, needed=set(), idle_after=300.0, max_pinned=4, now=20.0) == v[:2]  # beyond the cap, not pinned since 10
