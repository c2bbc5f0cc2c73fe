"""Whether a call lets other threads run: a ticker thread appends the time every 0.5 ms while it can get
the GIL; a call that holds the GIL throughout leaves no tick between its start and its end.

    ticks, seconds = ticks_during(lambda: native_call(data))
    assert ticks >= 2, f"{seconds:.3f} s without a tick"

    gap, seconds = longest_gap_during(lambda: native_call(data))   # the longest stretch without a tick
    assert gap < seconds / 2

A call that holds the GIL and then returns may still see a few ticks at its end on a busy machine (the ticker
runs while the caller waits to be scheduled again); the longest gap tells a call that held the GIL for most
of its time from one that let go of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["longest_gap_during", "ticks_during"]


def ticks_during(call: Callable[[], object]) -> tuple[int, float]:
    """(ticks of the ticker thread while ``call`` ran, seconds it ran)."""
    ticks, started, ended = _ticked(call)
    return sum(started < at < ended for at in ticks), ended - started


def longest_gap_during(call: Callable[[], object]) -> tuple[float, float]:
    """(the longest time without a tick of the ticker thread while ``call`` ran, seconds it ran)."""
    ticks, started, ended = _ticked(call)
    inside = [started, *(at for at in ticks if started < at < ended), ended]
    return max(later - earlier for earlier, later in zip(inside, inside[1:])), ended - started


def _ticked(call: Callable[[], object]) -> tuple[list[float], float, float]:
    ticks: list[float] = []
    done = threading.Event()

    def tick() -> None:
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.0005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    time.sleep(0.01)
    started = time.perf_counter()
    try:
        call()
    finally:
        ended = time.perf_counter()
        done.set()
        ticker.join()
    return ticks, started, ended
