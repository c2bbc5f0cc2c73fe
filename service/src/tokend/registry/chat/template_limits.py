"""`TemplateLimits`: the bounds of a conversation's chat-template renders (the sandbox keeps them; the
service layer sets them).

Its own module so that chat formats and reports can name it without importing the sandbox (and Jinja2,
~30 ms of a cold start) before a template is used.

    >>> TemplateLimits(seconds=0.5).max_chars
    16777216
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from tokend.errors import ChatTemplateError
from tokend.registry.chat.render_turns import RENDER_TURNS, TurnAccount

__all__ = ["TemplateClock", "TemplateLimits"]


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


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds for the renders of one conversation. `seconds` is wall time shared by every render of it
    (per-message spans render each prefix too): `start()` fixes the `deadline` (a `time.monotonic()` value)
    once, and every render stops there, or at `hard_deadline` (the call's deadline) when that is sooner. Wall
    time, not the render's CPU time: a template that spins holds a handler thread, and beside K others
    spinning its CPU second would take K seconds of a thread (docs/decisions.md).

        >>> TemplateLimits(seconds=2.0).start().deadline > time.monotonic()
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
    deadline: float | None = None  # None: `seconds` from the start of each render
    hard_deadline: float | None = None  # the call's deadline (a `time.monotonic()` value): never past it
    clock: TemplateClock | None = None  # charged with each render's CPU time (shared by a request's renders)

    def start(self) -> TemplateLimits:
        """These limits with the clock started now (unchanged when already started)."""
        return self if self.deadline is not None else replace(self, deadline=time.monotonic() + self.seconds)

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
        """When a render under these (started) limits stops: `deadline`, or `hard_deadline` when sooner.

            >>> TemplateLimits(deadline=5.0, hard_deadline=3.0).stops_at()
            3.0
        """
        deadline: float = self.start().deadline  # type: ignore[assignment]
        return deadline if self.hard_deadline is None else min(deadline, self.hard_deadline)
