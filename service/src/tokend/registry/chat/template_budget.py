"""`RenderBudget`: one chat-template render's bookkeeping of time and size — its deadline, the size every
value it builds is held to, and the large values it made and still holds.

A render (sandbox.render_template) makes one and sets it in `RENDER_BUDGET`; every hook of the sandbox finds
it with `current_budget()`, checks the time (`tick`) and sizes (`size`), and counts the large values it
made (`hold`). A limit passed raises `LimitExceeded`, which the render turns into a `ChatTemplateError`.

Time (TemplateLimits): the render's CPU time, its waits for the render turn, and its wall time, each bounded.
`tick` reads only the wall clock (~50 ns; the thread's CPU clock is a system call, ~300 ns, and a hook may
come every microsecond): the CPU time used since a moment is never more than the wall time since then, so
the CPU clock is read only once the wall clock says the CPU time left could be spent (`check_at`). A render
the machine does not slow reads it once, when it ends or its time does; one at a tenth of a core a few
times (each reading sets the next at the CPU time then left).

    >>> budget = RenderBudget(TemplateLimits(max_chars=1000))
    >>> budget.size(999, "a string")
    >>> budget.size(1001, "a string")
    Traceback (most recent call last):
    ...
    tokend.registry.chat.template_budget.LimitExceeded: the chat template would build a string of about 1,001 characters (limit 1,000)
    >>> sum(ticking(range(5000), budget))  # an iterable read with no other hook, the deadline checked as it goes
    12497500

Not here: what a value's size is (template_sizes), nor the bounds of one filter call (template_filters).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, NoReturn

from tokend.engine.call_stop import CURRENT_STOP, CallStopped
from tokend.registry.chat.render_turns import RENDER_TURNS, RendersFull, TurnAccount
from tokend.registry.chat.template_limits import WALL_TIME_FACTOR, RenderTime, TemplateLimits

__all__ = [
    "CountedRenderBudget",
    "HELD_MIN_CHARS",
    "LOOP_TICK_ITEMS",
    "RELEASE_MIN_BYTES",
    "RENDER_BUDGET",
    "LimitExceeded",
    "RenderBudget",
    "current_budget",
    "format_count",
    "ticking",
]


class LimitExceeded(Exception):
    """A render passed one of its limits; `reason` ("time_limit", "size_limit", or "busy": too many calls of
    this process render already, render_turns.MAX_RENDER_CALLS) becomes the error's."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class RenderBudget:
    __slots__ = ("account", "call_deadline", "check_at", "clock", "cpu_end", "deadline", "entered", "gone", "held", "held_bytes", "large",
                 "max_chars", "max_held_bytes", "positions", "prune_at", "seconds", "spent", "tracer", "turn",
                 "wall_seconds")  # fmt: skip

    def __init__(self, limits: TemplateLimits, tracer: Any = None, positions: Any = None) -> None:
        self.tracer = tracer  # a template_trace.ContentTracer during a traced render, else None
        self.positions = positions  # a message_positions.MessagePositions recording this render's loops, or None
        self.seconds = limits.seconds
        limits = limits.start()
        self.wall_seconds = WALL_TIME_FACTOR * limits.seconds if limits.wall_seconds is None else limits.wall_seconds
        self.deadline: float = limits.stops_at()  # the wall-clock bound (the call's deadline when sooner)
        self.call_deadline = self.deadline == limits.hard_deadline  # whether that is the call's deadline
        self.spent: RenderTime = limits.render_time  # type: ignore[assignment]
        cpu_now = time.thread_time()
        if self.spent.thread == threading.get_ident():
            self.cpu_end: float = limits.cpu_deadline  # type: ignore[assignment]
        else:  # limits started on another thread, whose CPU clock this one's is not: the seconds from now
            self.cpu_end = cpu_now + limits.seconds
        # When the wall clock next says the CPU time left could be spent (`tick` reads the CPU clock then).
        self.check_at = min(self.deadline, time.monotonic() + self.cpu_end - cpu_now)
        self.max_chars = limits.max_chars
        self.max_held_bytes = limits.max_held_bytes
        self.held: dict[int, tuple[Any, int]] = {}  # id -> (value, its bytes): the values made, HELD_MIN_CHARS+
        self.large: dict[int, tuple[Any, int]] = {}  # the same, for values of RELEASE_MIN_BYTES or more
        self.held_bytes = 0  # the bytes of both, summed
        self.prune_at = _PRUNE_BYTES
        self.turn = False  # whether this render holds the process's render turn (render_turns)
        self.entered = False  # whether this render counts its call among the process's rendering calls (`leave`s)
        # What its holds of the turn are charged to: the request's (its conversations' renders share it), or its own.
        self.account = limits.clock.turn if limits.clock is not None else TurnAccount()
        self.clock = limits.clock  # a request's: it may keep the render place its first render takes (keeping_place)
        # The call's cancellation flag (engine.call_stop, set around the service's chat calls), or None: a render
        # whose caller went away stops at its next hook, and leaves the turn's queue, instead of running (and
        # taking turns from other renders) until its time limit.
        stop = CURRENT_STOP.get()
        self.gone = None if stop is None else stop[1]

    def take_turn(self) -> None:
        """Wait for this process's render turn (render_turns: renders run one at a time), within the waits'
        bound (`_waits_end`); the call counted among those rendering first (refused, "busy", past
        MAX_RENDER_CALLS). Held already (a render inside a render, or one of a conversation's renders:
        `sandbox.renders_in_turn`), it is passed on first when its slice is over and a request that has held it
        less waits. `end_turn` after, always."""
        try:
            entered = RENDER_TURNS.enter()
            if entered and self.clock is not None and self.clock.keeps_place:
                self.clock.place = True  # the request's, until its last conversation is done
            else:
                self.entered = entered
        except RendersFull as full:
            raise LimitExceeded(
                "busy", f"the chat template was not rendered: {full}; retry shortly (each waits for its turn, holding "
                "one of the worker's threads)",
            ) from None
        began = time.monotonic()
        taken = RENDER_TURNS.take(deadline=self._waits_end(began), abandoned=self._abandoned, account=self.account)
        now = time.monotonic()
        self.spent.waited += now - began
        if not taken:
            self._waited_too_long()
        self.turn = True
        self._pass_on_if_due(now)

    def end_turn(self) -> None:
        if self.turn:
            self.turn = False
            RENDER_TURNS.give_back()
        if self.entered:
            self.entered = False
            RENDER_TURNS.leave()

    @contextlib.contextmanager
    def turn_set_aside(self) -> Iterator[None]:
        """One long step (a filter call over a large value, template_filters._ASIDE_FILTERS) that cannot pass the
        turn on midway runs without it, beside other renders as before the turns, rather than keeping every
        other render waiting for all of it (an `urlize` of 256 Ki characters takes ~0.3 s); the turn is taken
        again after, behind the renders that queued meanwhile."""
        if not self.turn:
            yield
            return
        hold = RENDER_TURNS.step_aside()
        self.turn = False
        try:
            yield
        finally:
            began = time.monotonic()
            back = RENDER_TURNS.come_back(hold, deadline=self._waits_end(began), abandoned=self._abandoned)
            self.spent.waited += time.monotonic() - began
            if not back:
                self._waited_too_long()  # (a limit the step raised is replaced by this one: both are time_limit or moot)
            self.turn = True

    def tick(self) -> None:
        if self.large:
            self.release()
        now = time.monotonic()
        if now > self.check_at:
            self._check_time(now)
        if self.gone is not None and self.gone[0]:
            raise CallStopped("the caller went away while its chat template rendered")
        if self.turn and RENDER_TURNS.due(now):
            self._pass_on(now)

    def _check_time(self, now: float) -> None:
        """The wall clock has reached `check_at`: past the wall-clock bound, or the CPU time spent, the render
        stops; else the next check is where the CPU time left could be spent at the earliest."""
        if now > self.deadline:
            self._past_wall_time()
        left = self.cpu_end - time.thread_time()
        if left <= 0.0:
            raise LimitExceeded("time_limit", f"the chat template ran longer than {self.seconds:g} s (of CPU time)")
        self.check_at = min(self.deadline, now + left)

    def _past_wall_time(self) -> NoReturn:
        if self.call_deadline:  # (the service answers it as the call's DeadlineExpired)
            raise LimitExceeded("time_limit", "the chat template did not finish before the call's deadline")
        raise LimitExceeded(
            "time_limit",
            f"the chat template ran longer than {self.seconds:g} s: {self.wall_seconds:g} s of wall time, its bound "
            f"when this worker or machine is too busy to give it {self.seconds:g} s of CPU time; retry later",
        )

    def _pass_on(self, now: float) -> None:
        passed = RENDER_TURNS.pass_on(deadline=self._waits_end(now), abandoned=self._abandoned)
        self.spent.waited += time.monotonic() - now
        if not passed:
            self.turn = False
            self._waited_too_long()

    def _pass_on_if_due(self, now: float) -> None:
        if RENDER_TURNS.due(now):
            self._pass_on(now)

    def _waits_end(self, now: float) -> float:
        """Until when a wait for the turn starting `now` may last: the waits' bound (`seconds` in all), or the
        wall-clock bound when sooner."""
        return min(self.deadline, now + self.seconds - self.spent.waited)

    def _abandoned(self) -> bool:
        return self.gone is not None and bool(self.gone[0])

    def _waited_too_long(self) -> NoReturn:
        if self._abandoned():
            raise CallStopped("the caller went away while its chat template waited for its turn")
        if time.monotonic() >= self.deadline:
            self._past_wall_time()
        raise LimitExceeded(
            "time_limit",
            f"the chat template waited longer than {self.seconds:g} s in all for other chat-template renders of "
            f"this worker (one runs at a time; waiting has its own bound of {self.seconds:g} s, as its CPU time has)",
        )

    def release(self) -> None:
        """Let go of the large values nothing else references any more. Called at every hook (`tick`), before
        the operation allocates: a value held one operation too long could not give its memory to the next
        one (Qwen3's `'<|im_start|>' + role + '\\n' + content + ...` over an 8 MB message took 3 ms more, and
        Reka-Edge's `ns.out ~ text` over 1,000 messages of 8 KB 650 -> 940 ms)."""
        dead = [key for key, entry in self.large.items() if _references(entry) <= _UNREFERENCED]
        for key in dead:
            self.held_bytes -= self.large.pop(key)[1]

    def hold(self, value: Any, size: int, what: str) -> None:
        """Count a large value the render made (`size` bytes); past `prune_at`, those no longer referenced
        elsewhere are let go (so a template that grows one string, `ns.out ~ text` per message, holds one),
        and what is still referenced must stay within max_held_bytes."""
        if id(value) in self.held or id(value) in self.large:  # the same object made again (a cached result)
            return
        (self.large if size >= RELEASE_MIN_BYTES else self.held)[id(value)] = (value, size)
        self.held_bytes += size
        if self.held_bytes <= self.prune_at:
            return
        self.held = {key: entry for key, entry in self.held.items() if _references(entry) > _UNREFERENCED}
        self.large = {key: entry for key, entry in self.large.items() if _references(entry) > _UNREFERENCED}
        self.held_bytes = sum(size for _, size in self.held.values()) + sum(size for _, size in self.large.values())
        if self.held_bytes > self.max_held_bytes:
            raise LimitExceeded(
                "size_limit",
                f"the chat template holds {format_count(self.held_bytes)} bytes of values it made, making {what} "
                f"(limit {self.max_held_bytes:,} bytes for one render)",
            )
        # Pruned again when the count doubles: each value is looked at O(1) times on average, and a render keeps
        # at most about as much garbage as it holds.
        self.prune_at = min(max(_PRUNE_BYTES, 2 * self.held_bytes), self.max_held_bytes)

    def size(self, chars: int, what: str) -> None:
        if chars > self.max_chars:
            raise LimitExceeded(
                "size_limit", f"the chat template would build {what} of about {format_count(chars)} characters (limit {self.max_chars:,})"
            )


class CountedRenderBudget(RenderBudget):
    """The budget of a render that also counts its hooks (`ticks`): its work, the same on every machine and under
    any load (message_positions prices prefix renders with it). A subclass so that the hooks of every other
    render (the prefix renders, the chats counted without per-message counts) do not pay for the count."""

    __slots__ = ("ticks",)

    def __init__(self, limits: TemplateLimits, tracer: Any = None, positions: Any = None) -> None:
        super().__init__(limits, tracer, positions)
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        RenderBudget.tick(self)


# Values the render makes of at least this many characters are counted while they live (`RenderBudget.hold`):
# ~1 us of copying each, so the count costs no real template anything measurable.
HELD_MIN_CHARS = 4096
# The held values are first checked for garbage past this many bytes.
_PRUNE_BYTES = 4 * 2**20
# ... and values of this many bytes or more at every hook (`RenderBudget.release`); a render holds at most
# max_held_bytes / RELEASE_MIN_BYTES (64) of them at once, so the check stays short.
RELEASE_MIN_BYTES = 1 << 20


def _references(entry: tuple[Any, int]) -> int:
    return sys.getrefcount(entry[0])


# What `_references` says of a value held only by its entry (the entry's and the call's references: 2 on
# CPython 3.11), measured rather than assumed, as the count differs between interpreter versions.
_UNREFERENCED = _references(("".join(["un", "referenced"]), 0))


def format_count(count: int) -> str:
    """A count for an error message: `format_count(12345)` is '12,345'."""
    # An estimate may be an integer too long for Python to print (more than 4,300 digits).
    return f"{count:,}" if count < 10**18 else f"10^{len(hex(count)) * 4 * 3 // 10}"


RENDER_BUDGET: contextvars.ContextVar[RenderBudget | None] = contextvars.ContextVar("tokend_chat_template_budget", default=None)


def current_budget() -> RenderBudget:
    """The budget of the render running now; template code run outside a render is refused."""
    budget = RENDER_BUDGET.get()
    if budget is None:
        # Jinja folds constant expressions while compiling (`{{ 'a'|center(10**8) }}`), outside any render and
        # its limits; refusing here makes the compiler leave them for render time, where the budget applies.
        raise LimitExceeded("size_limit", "template code runs only inside a render")
    return budget


# An iterable a template reads with no other hook (a `{% for %}` with an empty body, a filter's value) checks
# the deadline every this many items.
LOOP_TICK_ITEMS = 1024


def ticking(iterable: Any, budget: RenderBudget) -> Any:
    """The items of `iterable`, checking the budget's deadline every LOOP_TICK_ITEMS of them."""
    count = 0
    for item in iterable:
        count += 1
        if not count % LOOP_TICK_ITEMS:
            budget.tick()
        yield item
