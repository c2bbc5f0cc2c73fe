"""The supervisor's /metrics sums the workers' files at most once per interval however many scrapes arrive
(tokend.supervisor.shared_collection), and never answers a scrape with values summed before it arrived."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.supervisor.shared_collection import CollectionFailed, SharedCollection


class _Clock:
    """A clock that only moves when told to or when slept on: timings asserted exactly, whatever the load."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class _Counting:
    """A collector whose every collection is numbered, recording the clock when each starts."""

    def __init__(self, clock: _Clock) -> None:
        self.clock = clock
        self.started: list[float] = []

    def collect(self):
        self.started.append(self.clock())
        yield len(self.started)


def test_a_lone_scraper_slower_than_the_interval_gets_a_fresh_collection_without_waiting():
    clock = _Clock()
    inner = _Counting(clock)
    shared = SharedCollection(inner, min_interval=0.05, clock=clock, sleep=clock.sleep)
    seen = []
    for _ in range(3):
        seen.append(list(shared.collect()))
        clock.now += 0.06
    assert seen == [[1], [2], [3]]
    assert clock.sleeps == []
    assert inner.started == pytest.approx([0.0, 0.06, 0.12])


def test_a_fast_scraper_waits_for_the_next_collection_instead_of_old_values():
    clock = _Clock()
    inner = _Counting(clock)
    shared = SharedCollection(inner, min_interval=0.2, clock=clock, sleep=clock.sleep)
    assert list(shared.collect()) == [1]
    clock.now = 0.01
    assert list(shared.collect()) == [2]  # not [1]: that sum was made before this scrape arrived
    assert clock.sleeps == pytest.approx([0.19])
    assert inner.started == pytest.approx([0.0, 0.2])


def _burst(second_collection) -> tuple[list, SharedCollection]:
    """The first scrape's collection runs at clock 0 and is held until 49 more scrapes have arrived (at 1);
    they share the one collection started after it (at 2), which ``second_collection()`` makes. Returns
    each scrape's first value or the type of its error, and the SharedCollection."""
    now, arrivals = [0.0], threading.Semaphore(0)
    release = threading.Event()

    def clock() -> float:
        if threading.current_thread() is not threading.main_thread() and now[0] == 1.0:
            arrivals.release()
        return now[0]

    class Held:
        runs = 0

        def collect(self):
            Held.runs += 1
            if Held.runs == 1:
                assert release.wait(10)
                yield 1
            else:
                yield second_collection()

    shared = SharedCollection(Held(), min_interval=0.0, clock=clock)
    results: list = []

    def scrape() -> None:
        try:
            results.append(next(shared.collect()))
        except Exception as error:  # noqa: BLE001 (the test sorts them out)
            results.append(type(error))

    first = threading.Thread(target=scrape)
    first.start()
    while Held.runs == 0:
        time.sleep(0.001)
    now[0] = 1.0
    others = [threading.Thread(target=scrape) for _ in range(49)]
    for thread in others:
        thread.start()
    for _ in others:
        assert arrivals.acquire(timeout=10)  # each has read the clock on arrival
    now[0] = 2.0
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert Held.runs == 2
    now[0] = 3.0
    return results, shared


def test_a_burst_of_scrapes_shares_one_collection_after_the_running_one():
    results, shared = _burst(lambda: 2)
    assert sorted(results) == [1] + [2] * 49
    assert (shared.collections, shared.failures) == (2, 0)


def test_a_failed_collection_is_shared_by_the_scrapes_that_waited_for_it_and_the_next_scrape_tries_again():
    # Without the sharing, each of the 48 others would run one more failing collection in turn, one every
    # min_interval: a persistent failure would keep the last scraper waiting 48 intervals (12 s at 0.25 s).
    calls = []

    def fails_once():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("a worker's file went away")
        return "ok"

    results, shared = _burst(fails_once)
    assert results.count(1) == 1
    assert results.count(OSError) == 1  # the scrape that ran it sees the error itself
    assert results.count(CollectionFailed) == 48
    assert (shared.collections, shared.failures) == (1, 1)
    assert next(shared.collect()) == "ok"  # arrived after the failure: a collection of its own
    assert (shared.collections, shared.failures) == (2, 1)


def test_a_shared_failure_names_the_error_underneath():
    class Failing:
        def collect(self):
            raise OSError("a worker's file went away")

    clock = _Clock()
    shared = SharedCollection(Failing(), min_interval=0.0, clock=clock, sleep=clock.sleep)
    with pytest.raises(OSError):
        shared.collect()
    clock.now = -1.0  # a scrape that arrived before that collection started (as one queued on the lock)
    with pytest.raises(CollectionFailed, match="worker's file went away") as error:
        shared.collect()
    assert isinstance(error.value.__cause__, OSError)


def test_a_negative_interval_is_refused():
    with pytest.raises(ValueError, match="min_interval"):
        SharedCollection(_Counting(_Clock()), min_interval=-1)
