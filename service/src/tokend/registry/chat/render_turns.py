"""`RenderTurns`: the chat-template renders of one process run one at a time, taking turns in slices.

Why: a render is pure Python, so it runs only while it holds the GIL, and two renders in one process take as
long one after the other as side by side. Side by side they cost everyone else: each time the GIL changes
hands it may go to a render instead of a short call's thread, so a CountTokens beside K spinning renders
waits about K switch intervals at each of its few GIL acquisitions. Measured (bench/service_hostile.py's
template cases alone against `tokend serve --workers 2`, well-behaved CountTokens p99): 27.7-27.9 ms with
renders side by side, 3.5-5.5 ms with one render at a time (docs/decisions.md).

How: a render takes the turn before it starts (`take`), and gives it to the longest-waiting render after
each `SLICE_SECONDS` of holding it (`pass_on`, called from the render's hooks: `RenderBudget.tick`), then
queues again; a short render behind long ones waits about a slice for each render ahead of it, as it did
for its share of the GIL before. The slice is the holder's, not a render's: the renders of one conversation
(its whole and every prefix, for per-message spans) hold the turn as one (`sandbox.renders_in_turn`), so a
conversation of N messages queues about once a slice it holds, not N + 1 times; and one step that has no
hook inside (a filter call over a long value, up to ~0.5 s) runs without the turn (`step_aside` /
`come_back`, from `RenderBudget.turn_set_aside`), so the slice's end is never more than a short step away.
Waiting counts against the render's own wall-time limit (its deadline): `take` and `pass_on` answer False
when the deadline passed first, and the render fails with its time limit (template_budget); they answer
False as well when the render's call went away while it waited (`abandoned`), and the render stops. A thread that holds the turn and renders again (a render inside a render) keeps it.

    >>> turns = RenderTurns()
    >>> turns.take(deadline=time.monotonic() + 1.0)
    True
    >>> turns.waiting
    0
    >>> turns.pass_on(deadline=time.monotonic() + 1.0)   # nobody waits: keeps the turn
    True
    >>> turns.give_back()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["RENDER_TURNS", "RenderTurns", "SLICE_SECONDS"]

# How long a render holds the turn while others wait: a few GIL switch intervals (1 ms in a worker), so a
# short render (~0.1-5 ms for real templates) behind a spinning one waits about this long per render ahead.
SLICE_SECONDS = 0.002
# How often a waiting render looks whether its call went away (a cancelled call's render leaves the queue).
_ABANDON_POLL_SECONDS = 0.05


class _Waiter:
    __slots__ = ("granted", "event")

    def __init__(self) -> None:
        self.granted = False
        self.event = threading.Event()


class RenderTurns:
    """One turn, handed over first come, first served (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._owner: int | None = None  # the thread ident holding the turn
        self._depth = 0
        self.slice_seconds = SLICE_SECONDS
        self.slice_end = 0.0  # when the holder's slice ends (time.monotonic()): set as a thread takes the turn

    @property
    def waiting(self) -> int:
        """How many renders wait for the turn (a read without the lock: a hint for `pass_on`)."""
        return len(self._queue)

    def take(self, *, deadline: float, abandoned: Callable[[], bool] | None = None) -> bool:
        """Wait for the turn until `deadline` (`time.monotonic()`): True once held, False if the deadline
        passed first, or `abandoned()` became true (its caller went away; looked at every
        `_ABANDON_POLL_SECONDS`): the turn is then not held."""
        me = threading.get_ident()
        with self._lock:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None:
                self._owner, self._depth = me, 1
                self.slice_end = time.monotonic() + self.slice_seconds
                return True
            waiter = _Waiter()
            self._queue.append(waiter)
        try:
            while not waiter.event.wait(max(0.0, min(deadline - time.monotonic(), _ABANDON_POLL_SECONDS))):
                if time.monotonic() >= deadline or (abandoned is not None and abandoned()):
                    break
        except BaseException:  # an exception raised into the wait (KeyboardInterrupt in a main thread): the turn
            with self._lock:  # must not go to a waiter nobody waits on any more, which no render would get back
                if waiter.granted:
                    self._owner, self._depth = me, 1
                    self._hand_over()
                else:
                    self._queue.remove(waiter)
            raise
        with self._lock:
            if waiter.granted:  # handed over, possibly just as the wait timed out: ours now
                self._owner, self._depth = me, 1
                self.slice_end = time.monotonic() + self.slice_seconds
                return True
            self._queue.remove(waiter)
        return False

    def give_back(self) -> None:
        """End this thread's hold (the outermost one): the turn goes to the longest-waiting render."""
        with self._lock:
            if self._owner != threading.get_ident():
                return
            self._depth -= 1
            if self._depth:
                return
            self._hand_over()

    def due(self, now: float) -> bool:
        """Whether the holder's slice is over and others wait (reads without the lock: a hint for `pass_on`)."""
        return bool(self._queue) and now > self.slice_end

    def pass_on(self, *, deadline: float, abandoned: Callable[[], bool] | None = None) -> bool:
        """If others wait, let them take their turns, then wait for ours again (the hold's depth kept).
        False if `deadline` passed while waiting, or the caller went away (`take`): the turn is then not held."""
        if not self._queue:
            return True
        with self._lock:
            if self._owner != threading.get_ident() or not self._queue:
                return True
        return self.come_back(self.step_aside(), deadline=deadline, abandoned=abandoned)

    def step_aside(self) -> int:
        """Give the turn up whatever this thread's depth (for one long step that cannot pass it on midway, or
        to let others go first): the depth it held, 0 if it did not hold it, for `come_back`."""
        with self._lock:
            if self._owner != threading.get_ident():
                return 0
            depth = self._depth
            self._hand_over()
        return depth

    def come_back(self, depth: int, *, deadline: float, abandoned: Callable[[], bool] | None = None) -> bool:
        """Take the turn again after `step_aside` (`depth`: what it answered; 0 takes nothing), at that depth.
        False if `deadline` passed while waiting, or the caller went away (`take`): the turn is then not held."""
        if not depth:
            return True
        if not self.take(deadline=deadline, abandoned=abandoned):
            return False
        self._depth = depth  # ours alone while we hold the turn
        return True

    def _hand_over(self) -> None:
        """With the lock held: the turn to the first waiter, or to nobody."""
        if self._queue:
            waiter = self._queue.popleft()
            waiter.granted = True
            self._owner = _HANDED  # the waiter makes itself the owner when it wakes; nobody else may take it
            waiter.event.set()
        else:
            self._owner, self._depth = None, 0


# The owner while the turn travels from one thread to the next: not None, so no new render slips in first.
_HANDED = -1

RENDER_TURNS = RenderTurns()
