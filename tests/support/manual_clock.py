"""A ``WaitClock`` (tokend.server.wait_clock) whose time moves only when the test says: ``advance`` sets it,
wakes the threads waiting on it and returns once each of them is waiting again with nothing due (settled), so
what those threads did by a time is known when the test looks, however the machine stalls it.

    clock = ManualClock()
    deadlines = SendDeadlines(clock=clock)
    deadlines.end_after(context, 0.5)(lambda: None)
    clock.advance(0.4)   # nothing due yet
    clock.advance(0.2)   # the deadline thread has cancelled it by the time this returns
    assert context.cancelled.is_set()

A thread is known to the clock from its first wait until it ends: ``advance`` waits (``settle_seconds`` at most,
then fails the test: a thread that never comes back to wait is a bug or a hang) until at least ``threads`` have
waited and each known one still running is waiting with ``due()`` None or later than now. A thread busy outside
the wait (a cancel it makes) is not settled; one woken by a ``notify`` but not yet back is settled only if what it
would find due is not yet due (``due()`` is read under its condition, as the thread itself reads it). So the code
under test must say through ``due()`` everything a wake-up is for (SendDeadlines: its heap's head; ClockQueue:
an item waiting is due at once); work started by something else (a thread of the test) the test waits for itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["ManualClock"]


class ManualClock:
    def __init__(self, start: float = 1000.0, *, threads: int = 1, settle_seconds: float = 30.0) -> None:
        self._now = start
        self._threads = threads
        self._settle_seconds = settle_seconds
        self._lock = threading.Condition()  # guards the fields below; told when a thread comes to wait
        self._waiting: dict[int, tuple[threading.Condition, Callable[[], float | None]]] = {}  # thread -> its wait
        self._known: dict[int, threading.Thread] = {}  # threads that have waited on it (those ended are dropped)
        self._seen = 0  # how many threads have waited on it

    def now(self) -> float:
        with self._lock:
            return self._now

    def wait_until(self, condition: threading.Condition, due: Callable[[], float | None]) -> None:
        me = threading.get_ident()
        while True:
            at = due()
            with self._lock:
                if at is not None and at <= self._now:
                    return
                self._waiting[me] = (condition, due)
                if me not in self._known:
                    self._known[me] = threading.current_thread()
                    self._seen += 1
                self._lock.notify_all()
            try:
                condition.wait()  # woken by a notify of the code under test, or by advance
            finally:
                with self._lock:
                    self._waiting.pop(me, None)

    def advance(self, seconds: float) -> None:
        """Moves the time ``seconds`` on and waits until the threads waiting on it have settled."""
        self.advance_to(self.now() + seconds)

    def advance_to(self, when: float) -> None:
        with self._lock:
            assert when >= self._now, "a monotonic clock does not go back"
            self._now = when
            conditions = {id(condition): condition for condition, _ in self._waiting.values()}
        for condition in conditions.values():
            with condition:
                condition.notify_all()
        self.settle()

    def settle(self) -> None:
        """Returns once every thread known to the clock waits on it with nothing due (at least ``threads``)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._seen >= self._threads, self._settle_seconds):
                raise AssertionError(f"{self._threads - self._seen} thread(s) never waited on the clock")
        give_up = time.monotonic() + self._settle_seconds  # the real clock: only to fail a hang
        while time.monotonic() < give_up:
            if self._settled():
                return
            with self._lock:
                self._lock.wait(0.001)
        raise AssertionError("a thread waiting on the clock did not come back to wait with nothing due")

    def _settled(self) -> bool:
        with self._lock:
            for ident in [ident for ident, thread in self._known.items() if not thread.is_alive()]:
                del self._known[ident]  # it returned: nothing more of it to wait for
            known, waiting = set(self._known), dict(self._waiting)
        if known - waiting.keys():
            return False  # busy outside its wait
        for condition, due in waiting.values():
            with condition:  # as the thread reads it; its wait holds the condition only while awake
                at = due()
                with self._lock:
                    if at is not None and at <= self._now:
                        return False
        with self._lock:  # none left its wait meanwhile
            return known == self._known.keys() and self._waiting.keys() == waiting.keys()
