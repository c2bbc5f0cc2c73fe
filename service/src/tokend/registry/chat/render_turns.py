"""`RenderTurns`: the chat-template renders of one process run one at a time, taking turns in slices, the
turn going to the request that has held it least; at most `MAX_STARTED_CALLS` calls have started rendering,
and at most `MAX_RENDER_CALLS` render or wait to.

Why: a render is pure Python, so it runs only while it holds the GIL, and two renders in one process take as
long one after the other as side by side. Side by side they cost everyone else: each time the GIL changes
hands it may go to a render instead of a short call's thread, so a CountTokens beside K spinning renders
waits about K switch intervals at each of its few GIL acquisitions. Measured (bench/service_hostile.py's
template cases alone against `tokend serve --workers 2`, well-behaved CountTokens p99): 27.7-27.9 ms with
renders side by side, 3.5-5.5 ms with one render at a time (docs/decisions.md).

How: a render takes the turn before it starts (`take`), and after each `SLICE_SECONDS` of holding it while
others wait (`pass_on`, called from the render's hooks: `RenderBudget.tick`) gives it to a waiter whose
request has held it less, then queues again. Each hold is charged to an account (`TurnAccount`: a request's,
on its TemplateClock, shared by its conversations' renders): the turn goes to the waiter whose account has held
it least, first come first served among equals, and the holder keeps it past its slice while every waiter's
account has held more (least attained service). So a render of a request that has held little waits about
the rest of the holder's slice, however many long renders wait; first come first served, it waited a slice
of each render ahead every time it queued (a 64-message Qwen3 chat with a tool beside 7 spinning renders,
in-process: medians 563-973 ms against 66-101 ms, docs/decisions.md). Long renders share what is left, round the queue.
The slice is the holder's, not a render's: the renders of one conversation (its whole and every prefix, for
per-message spans) hold the turn as one (`sandbox.renders_in_turn`), so a conversation of N messages queues
about once a slice it holds, not N + 1 times; and one step that has no hook inside (a filter call over a long
value, up to ~0.5 s) runs without the turn (`step_aside` / `come_back`, from `RenderBudget.turn_set_aside`),
so the slice's end is never more than a short step away.
Waiting counts against the render's own wall-time limit (its deadline): `take` and `pass_on` answer False
when the deadline passed first, and the render fails with its time limit (template_budget); they answer
False as well when the render's call went away while it waited (`abandoned`), and the render stops. A thread
that holds the turn and renders again (a render inside a render) keeps it.

The calls of a process rendering (`enter` / `leave`: waiting for the turn, holding it, or stepped aside) are
at most `MAX_RENDER_CALLS`; one more is refused at once (`RendersFull`). Each holds one of its worker's handler
threads all along (server/grpc_server.py: THREADS_PER_WORKER leaves threads no render may take), so spinning
templates can delay the worker's other calls by their GIL share only, not take every thread. Of them, at most
`MAX_STARTED_CALLS` have started (held the turn once: they may hold template values, up to max_held_bytes
each); a call that has not waits for one of those places before its first turn (in the turn's order: first
come first served among requests that have held nothing), its wall time counting, and holds nothing but its
thread meanwhile.
Not handled: a slice ends only at the holder's next hook (one bounded filter call can take ~0.3 s), and a
new request has held nothing, so hostile requests arriving faster than their slices still delay a render
that has held more; while `MAX_RENDER_CALLS` hostile calls render or wait, a legitimate chat call is refused.

    >>> turns = RenderTurns()
    >>> turns.take(deadline=time.monotonic() + 1.0)
    True
    >>> turns.waiting
    0
    >>> turns.pass_on(deadline=time.monotonic() + 1.0)   # nobody waits: keeps the turn
    True
    >>> turns.give_back()
    >>> account = TurnAccount()
    >>> turns.take(deadline=time.monotonic() + 1.0, account=account) and account.held >= 0.0
    True
    >>> turns.give_back()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["MAX_RENDER_CALLS", "MAX_STARTED_CALLS", "RENDER_TURNS", "RendersFull", "RenderTurns", "SLICE_SECONDS", "TurnAccount"]

# How long a render holds the turn while others wait: a few GIL switch intervals (1 ms in a worker), so a
# short render (~0.1-5 ms for real templates) behind a spinning one waits about this long per render ahead.
SLICE_SECONDS = 0.002
# Calls of one process that may have started rendering: what a worker's 8 handler threads allowed before
# (every thread in a render); each may hold up to its max_held_bytes of template values.
MAX_STARTED_CALLS = 8
# Calls of one process that may render or wait to (each holds a handler thread): the started ones, and
# twice as many waiting for a place among them.
MAX_RENDER_CALLS = 3 * MAX_STARTED_CALLS
# How often a waiting render looks whether its call went away (a cancelled call's render leaves the queue).
_ABANDON_POLL_SECONDS = 0.05


class TurnAccount:
    """The turn time (seconds) a request's renders held: the turn goes to the waiter whose account held least.

        >>> TurnAccount().held
        0.0
    """

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = 0.0


class RendersFull(Exception):
    """`MAX_RENDER_CALLS` calls of this process render already (`RenderTurns.enter`)."""


class _Waiter:
    __slots__ = ("account", "granted", "event", "ident")

    def __init__(self) -> None:
        self.account: TurnAccount = _NOBODY  # set by `take`
        self.ident = 0  # the waiting thread's (set by `take`)
        self.granted = False
        self.event = threading.Event()


class RenderTurns:
    """One turn, handed over to the waiter whose account held it least (thread-safe)."""

    def __init__(self, max_calls: int = MAX_RENDER_CALLS, max_started: int = MAX_STARTED_CALLS) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._owner: int | None = None  # the thread ident holding the turn
        self._depth = 0
        self._account: TurnAccount = _NOBODY  # the holder's, charged when it lets go or keeps it past a slice
        self._since = 0.0  # when the holder's time was last charged (time.monotonic())
        self._calls: dict[int, bool] = {}  # the threads rendering (`enter`) -> whether their call has started
        self._started = 0  # how many of them have
        self.max_calls = max_calls
        self.max_started = max_started
        self.slice_seconds = SLICE_SECONDS
        self.slice_end = 0.0  # when the holder's slice ends (time.monotonic()): set as a thread takes the turn

    @property
    def waiting(self) -> int:
        """How many renders wait for the turn (a read without the lock: a hint for `pass_on`)."""
        return len(self._queue)

    @property
    def calls(self) -> int:
        """How many calls render (`enter`)."""
        return len(self._calls)

    def enter(self) -> bool:
        """Count this thread's call among those rendering, before its first `take`: True if it was not yet
        (the caller `leave`s after its last render), False if it was (a render inside a render, or one of a
        conversation's renders). Raises `RendersFull` when `max_calls` render already."""
        me = threading.get_ident()
        with self._lock:
            if me in self._calls:
                return False
            if len(self._calls) >= self.max_calls:
                raise RendersFull(f"{self.max_calls} calls of this worker already render chat templates or wait to")
            self._calls[me] = False
        return True

    def leave(self) -> None:
        """This thread's call renders no more (after `enter` answered True): it no longer counts, and a turn it
        still held (whatever the depth) goes to the next waiter, as does a free turn a waiter may now start with."""
        me = threading.get_ident()
        with self._lock:
            if self._calls.pop(me, False):
                self._started -= 1
            if self._owner == me or self._owner is None and self._queue:
                self._hand_over()

    def take(self, *, deadline: float, abandoned: Callable[[], bool] | None = None, account: TurnAccount | None = None) -> bool:
        """Wait for the turn until `deadline` (`time.monotonic()`): True once held, False if the deadline
        passed first, or `abandoned()` became true (its caller went away; looked at every
        `_ABANDON_POLL_SECONDS`): the turn is then not held. `account`: what the hold is charged to (None: its
        own)."""
        me = threading.get_ident()
        account = TurnAccount() if account is None else account
        with self._lock:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and self._may_start(me):
                self._hold(me, 1, account)
                return True
            waiter = _Waiter()
            waiter.account, waiter.ident = account, me
            self._queue.append(waiter)
        try:
            while not waiter.event.wait(max(0.0, min(deadline - time.monotonic(), _ABANDON_POLL_SECONDS))):
                if time.monotonic() >= deadline or (abandoned is not None and abandoned()):
                    break
        except BaseException:  # an exception raised into the wait (KeyboardInterrupt in a main thread): the turn
            with self._lock:  # must not go to a waiter nobody waits on any more, which no render would get back
                if waiter.granted:
                    self._hold(me, 1, account)
                    self._hand_over()
                else:
                    self._queue.remove(waiter)
            raise
        with self._lock:
            if waiter.granted:  # handed over, possibly just as the wait timed out: ours now
                self._hold(me, 1, account)
                return True
            self._queue.remove(waiter)
        return False

    def give_back(self) -> None:
        """End this thread's hold (the outermost one): the turn goes to the waiter whose account held it least."""
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
        """If a render waits whose account has held the turn less than the holder's, let it take its turn, then
        wait for ours again (the hold's depth and account kept); else keep it for another slice. False if
        `deadline` passed while waiting, or the caller went away (`take`): the turn is then not held."""
        if not self._queue:
            return True
        with self._lock:
            if self._owner != threading.get_ident() or not self._queue:
                return True
            now = time.monotonic()
            held = self._account.held + now - self._since
            if min((waiter.account.held for waiter in self._queue if self._may_start(waiter.ident)), default=held) >= held:
                self._account.held, self._since = held, now  # charged so far; another slice
                self.slice_end = now + self.slice_seconds
                return True  # every waiter has held it longer: keep it (they share what is left)
        return self.come_back(self.step_aside(), deadline=deadline, abandoned=abandoned)

    def step_aside(self) -> tuple[int, TurnAccount]:
        """Give the turn up whatever this thread's depth (for one long step that cannot pass it on midway, or
        to let others go first): the depth it held (0 if it did not hold it) and its account, for `come_back`."""
        with self._lock:
            if self._owner != threading.get_ident():
                return 0, _NOBODY
            held = self._depth, self._account
            self._hand_over()
        return held

    def come_back(self, hold: tuple[int, TurnAccount], *, deadline: float, abandoned: Callable[[], bool] | None = None) -> bool:
        """Take the turn again after `step_aside` (`hold`: what it answered; depth 0 takes nothing), at that
        depth, charged to that account. False if `deadline` passed while waiting, or the caller went away
        (`take`): the turn is then not held."""
        depth, account = hold
        if not depth:
            return True
        if not self.take(deadline=deadline, abandoned=abandoned, account=account):
            return False
        self._depth = depth  # ours alone while we hold the turn
        return True

    def _may_start(self, thread: int) -> bool:
        """With the lock held: whether `thread` may take the turn: its call has started, or a place is free
        among the started calls (a thread that did not `enter` always may)."""
        return self._calls.get(thread, True) or self._started < self.max_started

    def _hold(self, owner: int, depth: int, account: TurnAccount) -> None:
        """With the lock held: `owner` holds the turn from now, its time charged to `account`; its call has
        started."""
        if self._calls.get(owner) is False:
            self._calls[owner] = True
            self._started += 1
        now = time.monotonic()
        self._owner, self._depth, self._account, self._since = owner, depth, account, now
        self.slice_end = now + self.slice_seconds

    def _hand_over(self) -> None:
        """With the lock held: the holder's time charged (if one held it), then the turn to the waiter whose
        account has held it least (the longest-waiting of those) among those that may start, or to nobody."""
        self._account.held += time.monotonic() - self._since
        self._account = _NOBODY
        # At most `max_calls` waiters: a scan, not a heap; min() keeps the first of equals.
        waiter = min((waiter for waiter in self._queue if self._may_start(waiter.ident)), key=_held, default=None)
        if waiter is not None:
            self._queue.remove(waiter)
            waiter.granted = True
            self._owner = _HANDED  # the waiter makes itself the owner when it wakes; nobody else may take it
            waiter.event.set()
        else:
            self._owner, self._depth = None, 0


def _held(waiter: _Waiter) -> float:
    return waiter.account.held


# The owner while the turn travels from one thread to the next: not None, so no new render slips in first.
_HANDED = -1
# The account of no hold (charged while nobody holds the turn: never read).
_NOBODY = TurnAccount()

RENDER_TURNS = RenderTurns()
