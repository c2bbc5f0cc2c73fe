"""The clock a deadline thread reads and waits on: ``now()`` and ``wait_until(condition, due)``.

Why: a thread that wakes at deadlines (``SendDeadlines``) reads the time and waits on a ``threading.Condition``
for it; with both taken from one clock a test can drive the time itself (tests/support/manual_clock.py) and
decide every deadline in order, where the wall clock let a stall of the machine (a loaded CI runner) move one
deadline past another. Production passes ``MONOTONIC``: ``time.monotonic()`` and the condition's own timed wait.

    from tokend.server.wait_clock import MONOTONIC

    with condition:
        MONOTONIC.wait_until(condition, lambda: heap[0][0] if heap else None)  # returns holding it, once due
        now = MONOTONIC.now()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["WaitClock", "MonotonicClock", "MONOTONIC"]


class WaitClock(Protocol):
    def now(self) -> float:
        """Seconds, only growing (``time.monotonic()``'s scale)."""

    def wait_until(self, condition: threading.Condition, due: Callable[[], float | None]) -> None:
        """Called holding ``condition``: waits on it until ``due()`` (read under it, again at each wake: a
        ``notify`` may bring a sooner one) is not None and ``now()`` has reached it; returns holding it."""


class MonotonicClock:
    """``time.monotonic()``, and the condition's timed wait to reach a due time."""

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, condition: threading.Condition, due: Callable[[], float | None]) -> None:
        while True:
            at, now = due(), time.monotonic()
            if at is not None and at <= now:
                return
            condition.wait(None if at is None else at - now)


MONOTONIC = MonotonicClock()
