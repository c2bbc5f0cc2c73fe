"""`TemplateLimits`: the bounds of a conversation's chat-template renders (the sandbox keeps them; the
service layer sets them), and `RenderTime`, what the renders of one conversation have used of them.

Its own module so that chat formats and reports can name it without importing the sandbox (and Jinja2,
~30 ms of a cold start) before a template is used.

    >>> TemplateLimits(seconds=0.5).max_chars
    16777216
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from tokend.errors import ChatTemplateError
from tokend.registry.chat.render_turns import RENDER_TURNS, TurnAccount

__all__ = ["WALL_TIME_FACTOR", "RenderTime", "TemplateClock", "TemplateLimits"]

# A conversation's renders may take this many times their `seconds` of wall time (`TemplateLimits.wall_seconds`
# unset): their bound is CPU time, so that a render the machine or the worker's other threads keep off the CPU
# is not refused for it (a 10,000-message Qwen 3 chat at load 5 on 2 cores: 1.03-1.10 s of wall time for
# 0.55-0.64 s of CPU, docs/decisions.md), but a render must still end: one that gets less than a quarter of a
# core stops here. What it costs: a spinning template holds its handler thread (and its place among the
# rendering calls, render_turns) up to this many seconds instead of one while the machine is that busy.
WALL_TIME_FACTOR = 4.0


class TemplateClock:
    """The CPU time (``time.thread_time``) renders spent, summed: every render given limits with this clock
    adds its own, so a request can share template time among its conversations and charge nothing else
    (tokenizing between renders, or waiting for the GIL while another thread runs, is not template time).
    `turn`: the time its renders held the process's render turn (render_turns: the turn goes to the waiting
    request that has held it least). Inside `keeping_place()`, the place among the process's rendering calls
    (`RenderTurns.enter`) that the request's first render takes is kept until the block ends: given back after
    each conversation, a request of several could be refused "busy" partway through, its work before lost,
    when other calls took every place meanwhile.

        >>> clock = TemplateClock()
        >>> clock.spent, clock.turn.held
        (0.0, 0.0)
        >>> with clock.keeping_place():   # on the thread that renders: the request's conversations inside
        ...     pass
    """

    __slots__ = ("spent", "turn", "keeps_place", "place")

    def __init__(self) -> None:
        self.spent = 0.0
        self.turn = TurnAccount()
        self.keeps_place = False
        self.place = False  # whether a render took the place it keeps (RenderBudget.take_turn sets it)

    @contextlib.contextmanager
    def keeping_place(self) -> Iterator[None]:
        self.keeps_place = True
        try:
            yield
        finally:
            self.keeps_place = False
            if self.place:
                self.place = False
                RENDER_TURNS.leave()


class RenderTime:
    """What the renders of one conversation (its whole and every prefix, or a trace's) have used of their limits
    that no single render sees: the seconds they waited for the process's render turn together (render_turns:
    waiting is not work, so it is not CPU time; it has its own bound, `TemplateLimits.seconds` in all), and the
    thread they run on, whose CPU clock `TemplateLimits.cpu_deadline` reads. Made by `TemplateLimits.start()`.

        >>> RenderTime().waited
        0.0
    """

    __slots__ = ("thread", "waited")

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.waited = 0.0


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds for the renders of one conversation, shared by every render of it (per-message spans render
    each prefix too). Time, three bounds, fixed once by `start()`:
    - `seconds` of CPU time (`time.thread_time()` of the thread rendering): the work the renders did, whatever
      the machine's load; `cpu_deadline` is where that clock stops them;
    - the same `seconds` of waiting for the process's render turn, together (render_turns: one render runs at a
      time; `RenderTime.waited`): a render beside spinning ones is stopped after waiting that long, as before;
    - `wall_seconds` of wall time (unset: WALL_TIME_FACTOR × `seconds`) to `deadline` (a `time.monotonic()`
      value), or the call's deadline (`hard_deadline`) when sooner: whatever keeps a render off the CPU (the
      machine's load, the worker's other threads holding the GIL), it ends.

        >>> limits = TemplateLimits(seconds=2.0).start()
        >>> limits.deadline - time.monotonic() > 7.9 and limits.cpu_deadline - time.thread_time() > 1.9
        True
    """

    seconds: float = 1.0
    max_chars: int = 16 * 2**20  # output, and any single value the template builds
    # Bytes of the values a render has made and still holds, together (strings, lists and dicts of 4,096
    # characters or more each). The service sets it from the memory it reserves for a chat (service/chat.py).
    max_held_bytes: int = 64 * 2**20
    # UTF-8 bytes of the rendered text, whose encode the service reserved memory for (service/chat.py: twice or
    # twelve times the conversation's counted bytes + 64 KiB, by encoding: rendered_text_bytes); None: no bound but `max_chars`. Checked once the render is done and
    # before the text is encoded (`check_text`): a template that repeats a message's content is refused there.
    max_text_bytes: int | None = None
    wall_seconds: float | None = None  # None: WALL_TIME_FACTOR × seconds
    deadline: float | None = None  # the wall-clock bound (time.monotonic()); None: not started, `start()` sets it
    cpu_deadline: float | None = None  # the CPU bound, a `time.thread_time()` of `render_time.thread`, set by `start()`
    render_time: RenderTime | None = None  # the renders' waits and thread, set by `start()`
    hard_deadline: float | None = None  # the call's deadline (a `time.monotonic()` value): never past it
    clock: TemplateClock | None = None  # charged with each render's CPU time (shared by a request's renders)

    def start(self) -> TemplateLimits:
        """These limits with their clocks started now, on the thread that renders (unchanged when already
        started)."""
        if self.render_time is not None:
            return self
        wall = WALL_TIME_FACTOR * self.seconds if self.wall_seconds is None else self.wall_seconds
        deadline = time.monotonic() + wall if self.deadline is None else self.deadline  # (a deadline given: kept)
        cpu_deadline = time.thread_time() + self.seconds if self.cpu_deadline is None else self.cpu_deadline
        return replace(self, deadline=deadline, cpu_deadline=cpu_deadline, render_time=RenderTime())

    def share(self, fraction: float) -> TemplateLimits:
        """These (started) limits cut to `fraction` of what is left of them now, for renders that must leave the
        rest (the prefix renders of per-message spans): of the CPU time, and of the wall time to the call's
        deadline when that comes first; their waits stay counted with the others'.

            >>> limits = TemplateLimits(seconds=2.0).start()
            >>> limits.share(0.5).cpu_deadline - time.thread_time() < 1.01
            True
        """
        started = self.start()
        now, cpu_now = time.monotonic(), time.thread_time()
        return replace(
            started,
            deadline=now + fraction * max(0.0, started.stops_at() - now),
            cpu_deadline=cpu_now + fraction * max(0.0, started.cpu_deadline - cpu_now),  # type: ignore[operator]
        )

    def cpu_left(self) -> float:
        """The CPU seconds these (started) limits leave their renders now, on the thread that started them."""
        started = self.start()
        return max(0.0, started.cpu_deadline - time.thread_time())  # type: ignore[operator]

    def check_text(self, parts: Sequence[str]) -> None:
        """Raise ChatTemplateError ("size_limit") when the rendered text (its `parts`) passes `max_text_bytes`.

            >>> TemplateLimits(max_text_bytes=4).check_text(["ab", "cd"])   # 4 bytes: within
        """
        most = self.max_text_bytes
        if most is None or 4 * sum(map(len, parts)) <= most:  # (at most 4 bytes a character)
            return
        size = sum(len(part) if part.isascii() else len(str(part).encode("utf-8", "surrogatepass")) for part in parts)
        if size > most:
            raise ChatTemplateError(
                f"the chat template rendered {size:,} bytes of text (limit {most:,} bytes for this conversation: a "
                "multiple of its own bytes and 64 KiB, what its encoding's memory was reserved for); the template "
                "repeats the content, so send less of it",
                reason="size_limit",
            )

    def stops_at(self) -> float:
        """When a render under these (started) limits stops at the latest, in wall time: `deadline`, or
        `hard_deadline` when sooner.

            >>> TemplateLimits(deadline=5.0, hard_deadline=3.0).stops_at()
            3.0
        """
        deadline: float = self.start().deadline  # type: ignore[assignment]
        return deadline if self.hard_deadline is None else min(deadline, self.hard_deadline)
