"""Whether a call lets other threads run: a ticker thread appends the time every 0.5 ms while it can get
the GIL; a call that holds the GIL throughout leaves no tick between its start and its end.

    ticks, seconds = ticks_during(lambda: native_call(data))
    assert ticks >= 2, f"{seconds:.3f} s without a tick"
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["ticks_during"]


def ticks_during(call: Callable[[], object]) -> tuple[int, float]:
    """(ticks of the ticker thread while ``call`` ran, seconds it ran)."""
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
    return sum(started < at < ended for at in ticks), ended - started
