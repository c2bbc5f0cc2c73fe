"""The supervisor's /metrics sums the workers' files at most once per interval however many scrapes arrive
(tokend.supervisor.shared_collection), and never answers a scrape with values summed before it arrived."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.supervisor.shared_collection import SharedCollection


class _Counting:
    """A collector whose every collection is numbered; ``delay`` seconds each."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.started: list[float] = []

    def collect(self):
        self.started.append(time.monotonic())
        time.sleep(self.delay)
        yield len(self.started)


def test_a_lone_scraper_slower_than_the_interval_gets_a_fresh_collection_without_waiting():
    inner = _Counting()
    shared = SharedCollection(inner, min_interval=0.05)
    seen = []
    for _ in range(3):
        started = time.monotonic()
        seen.append(list(shared.collect()))
        assert time.monotonic() - started < 0.05
        time.sleep(0.06)
    assert seen == [[1], [2], [3]]


def test_a_fast_scraper_waits_for_the_next_collection_instead_of_old_values():
    inner = _Counting()
    shared = SharedCollection(inner, min_interval=0.2)
    assert list(shared.collect()) == [1]
    started = time.monotonic()
    assert list(shared.collect()) == [2]  # not [1]: that sum was made before this scrape arrived
    assert time.monotonic() - started >= 0.15
    assert inner.started[1] - inner.started[0] >= 0.2 - 1e-3


def test_a_burst_of_scrapes_shares_one_collection_after_the_running_one():
    # A clock the test moves: the first scrape's collection runs at 0 and is held until 49 more scrapes have
    # arrived (at 1); they share the one collection started after it (at 2).
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
            yield Held.runs

    shared = SharedCollection(Held(), min_interval=0.0, clock=clock)
    results: list[int] = []
    first = threading.Thread(target=lambda: results.append(next(shared.collect())))
    first.start()
    while Held.runs == 0:
        time.sleep(0.001)
    now[0] = 1.0
    others = [threading.Thread(target=lambda: results.append(next(shared.collect()))) for _ in range(49)]
    for thread in others:
        thread.start()
    for _ in others:
        assert arrivals.acquire(timeout=10)  # each has read the clock on arrival
    now[0] = 2.0
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert sorted(results) == [1] + [2] * 49
    assert shared.collections == 2


def test_a_failed_collection_is_not_shared():
    class Failing:
        calls = 0

        def collect(self):
            Failing.calls += 1
            if Failing.calls == 1:
                raise OSError("a worker's file went away")
            yield "ok"

    shared = SharedCollection(Failing(), min_interval=0.0)
    with pytest.raises(OSError):
        list(shared.collect())
    assert list(shared.collect()) == ["ok"]


def test_a_negative_interval_is_refused():
    with pytest.raises(ValueError, match="min_interval"):
        SharedCollection(_Counting(), min_interval=-1)
