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

__all__ = ["longest_gap_during", "longest_gap_with_a_core", "ticks_during"]


def ticks_during(call: Callable[[], object]) -> tuple[int, float]:
    """(ticks of the ticker thread while ``call`` ran, seconds it ran)."""
    ticks, started, ended = _ticked(call)
    return sum(started < at < ended for at in ticks), ended - started


def longest_gap_during(call: Callable[[], object]) -> tuple[float, float]:
    """(the longest time without a tick of the ticker thread while ``call`` ran, seconds it ran)."""
    ticks, started, ended = _ticked(call)
    inside = [started, *(at for at in ticks if started < at < ended), ended]
    return max(later - earlier for earlier, later in zip(inside, inside[1:])), ended - started


def longest_gap_with_a_core(call: Callable[[], object], passes: Callable[[float, float], bool],
                            tries: int = 4) -> tuple[float, float]:
    """`longest_gap_during`, measured again (up to `tries` times) while it fails ``passes(gap, seconds)`` AND the
    calling thread had less than 60 % of a core during the call (its CPU time / the call's wall time).

        gap, seconds = longest_gap_with_a_core(call, lambda gap, seconds: gap < seconds / 2)

    Why: on a machine with more runnable threads than cores the scheduler, not the GIL, leaves the ticker without
    ticks for long stretches. A call that holds the GIL itself runs on its core throughout (CPU / wall near 1),
    so a failure with the core is never measured again: only the starved measurements are."""
    for _ in range(tries):
        cpu: list[float] = []

        def timed() -> None:
            started = time.thread_time()
            try:
                call()
            finally:
                cpu.append(time.thread_time() - started)

        gap, seconds = longest_gap_during(timed)
        if passes(gap, seconds) or cpu[0] >= 0.6 * seconds:
            break
    return gap, seconds


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
