"""`MessagePositions`: where a chat template's output stood each time one of its `{% for %}` loops reached a
message, recorded during one render: the per-message spans of a chat whose prefixes are too many to render.

Per-message spans are defined by prefix renders (template_format: message k starts where the render of
`messages[:k]` ends), one render per message, so their cost grows with the square of the chat's length (a
300-message Qwen3 chat with tools: 1.4 s of renders for a 10 ms render of the whole). This records, in the
one render of the whole, the output length (and the render's work, in budget ticks) each time a loop over
the messages list, or over a list of its messages in increasing order (`messages[1:]`; not Qwen3's scan of
`messages[::-1]`), hands a message to its body: one entry per message, the last loop to reach it winning,
its message's *candidate* boundary; a loop that reached the last message gives, when it ends, the candidate
end of the last message. Candidates are where a template's loop is, not the prefix-render definition: a template
that renders a message differently once later messages follow (Qwen3's reasoning rule, its run of tool
messages) has a prefix-render boundary that is unknown (None) where its candidate is a place in the text;
template_format reports spans from candidates with `spans_exact` False.

The recorded work also prices the prefix renders before they run: the render of `messages[:k]` does about
the work the whole did until its loop reached message k (`prefix_ticks`).

    >>> from tokend.registry.chat.sandbox import compile_template, render_template, TemplateLimits
    >>> template = compile_template("[{% for m in messages %}<{{ m.content }}>{% endfor %}]")
    >>> messages = [{"content": "a"}, {"content": "bc"}]
    >>> positions = MessagePositions(messages)
    >>> render_template(template, {"messages": messages}, TemplateLimits(), positions=positions)
    '[<a><bc>]'
    >>> positions.candidates()
    [1, 4, 8]

Not handled: a loop whose body's output is captured (inside a macro, a recursive loop or a `{% set %}` block,
or a template that builds its text in a namespace and prints it at the end) records where the output stood
before the capture, so its messages count nothing and the text is the format's own; a filtered loop
(`{% for m in messages if ... %}`) with `loop.*` records where its filter read an item ahead. Such
candidates are wrong, never the ids (spans_exact is False for every candidate).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MAX_PREFIX_TICKS", "PREFIX_TIME_SHARE", "RECORDED_FROM_MESSAGES", "MessageLoop", "MessagePositions"]

# The prefix renders of one chat may do at most this much work, as `prefix_ticks` estimates it (~0.35 s of a
# quiet worker's renders: a Qwen3 agent chat with 8 tools of ~150 messages; docs/decisions.md); past it the
# spans come from the loops. Counted in hooks, not seconds, so that a chat gets the same spans on every
# machine and under any load ...
MAX_PREFIX_TICKS = 300_000
# ... unless the prefix renders would not fit, or run out of, this share of the time the render of the whole
# left: the rest stays for the request's other conversations, which share its template time (service/chat.py).
PREFIX_TIME_SHARE = 0.5
# Chats of fewer messages render their whole without recording (the common request: recording cost a 6-message
# Qwen3 chat with 3 tools ~10% of that render), and their prefixes without an estimate, within the time share;
# past it, the whole renders again, recording, for the loops' boundaries.
RECORDED_FROM_MESSAGES = 16


class MessagePositions:
    """The records of one render over `messages` (the list the template sees): one entry per message, however
    many loops the template runs over them (a loop's records overwrite an earlier loop's)."""

    def __init__(self, messages: list) -> None:
        self.count = len(messages)
        self._messages = messages  # kept alive: the ids of `_index` stay theirs
        # id(message) -> its index; None where one object stands for two messages (its loops are not followed).
        # Made when the render's first loop over a list asks.
        self._index: dict[int, int | None] | None = None
        self._distinct = False  # whether no object stands for two messages (known with `_index`)
        self.starts: list[int | None] = [None] * self.count  # output length as the message reached a loop's body
        self.reached_ticks: list[int | None] = [None] * self.count  # the render's hooks until then
        self.end: int | None = None  # output length when a loop that reached the last message ended
        self.produced = 0  # the render's output so far, in characters (sandbox.render_template keeps it)
        self.total_ticks = 0  # the whole render's work (set when it ends)
        self.seconds = 0.0  # the whole render's CPU time (set when it ends)
        self.wall_seconds = 0.0  # ... and its wall time, its wait for the render turn included

    def loop(self, items: list, budget: Any) -> MessageLoop | None:
        """A loop over `items` (a list), when they are messages in increasing order: its recording iterator.
        A loop over other values, or over messages in another order (Qwen3's `messages[::-1]`), is not followed."""
        if not items:
            return None
        index = self._index if self._index is not None else self._message_index()
        if items is self._messages and self._distinct:
            return MessageLoop(items, range(self.count), self, budget)
        if index.get(id(items[0])) is None:
            return None
        indices = [index.get(id(item)) for item in items]
        if None in indices or any(a >= b for a, b in zip(indices, indices[1:])):
            return None
        return MessageLoop(items, indices, self, budget)

    def _message_index(self) -> dict[int, int | None]:
        index: dict[int, int | None] = {}
        for position, message in enumerate(self._messages):
            key = id(message)
            index[key] = None if key in index else position
        self._index, self._distinct = index, len(index) == self.count
        return index

    def candidates(self) -> list[int | None]:
        """Where each message starts and (last entry) where the last one ends, by the loops; None where no
        loop reached it."""
        return [*self.starts, self.end]

    def prefix_renders_fit(self, add_generation_prompt: bool, share: Any) -> bool:
        """Whether the prefix renders' work (`prefix_ticks`) is within MAX_PREFIX_TICKS and, at the pace the
        render of the whole went, within the CPU time and the wall time (a loaded worker's slower) of `share`
        (started TemplateLimits: their `share()`): else they are not started, rather than stopped at their
        share with that share spent."""
        work = sum(self.prefix_ticks(add_generation_prompt))
        total = max(1, self.total_ticks)
        return (work <= MAX_PREFIX_TICKS and work * self.seconds <= share.cpu_left() * total
                and work * self.wall_seconds <= max(0.0, share.stops_at() - time.monotonic()) * total)

    def prefix_ticks(self, add_generation_prompt: bool) -> list[int]:
        """About the work of rendering each prefix `messages[:k]` (k <= count): what the whole had done when its
        loop reached message k (the whole's work where no loop did, and for k == count when the whole was
        rendered with a generation prompt; 0 without one: that prefix is the whole, not rendered again)."""
        total = self.total_ticks
        costs = [total if ticks is None else ticks for ticks in self.reached_ticks]
        return costs + [total if add_generation_prompt else 0]


class MessageLoop:
    """The iterator a `{% for %}` over messages gets: hands the items out, recording (output length, ticks)
    as each one goes to the loop's body, and the output length when the loop ends. A loop with `loop.*`
    reads its items through a LoopContext, which looks one item ahead (`loop.last`): that one records in
    `RecordingLoopContext.__next__` instead (template_code_hooks), when the item is handed to the body.
    Its records count only once the output has grown since the loop began: a loop that writes nothing (a scan
    for the last user turn, a loop building the text in a namespace) would place every message at one offset."""

    __slots__ = ("items", "indices", "_positions", "_budget", "_next", "_handed", "_ended", "_began", "_pending")

    def __init__(self, items: list, indices: list, positions: MessagePositions, budget: Any) -> None:
        self.items = items
        self.indices = indices  # message index of each item, increasing
        self._positions = positions
        self._budget = budget
        self._next = 0  # the next item this iterator hands out
        self._handed = 0  # items handed to the loop's body
        self._ended = False
        self._began = positions.produced  # the output when the loop began
        # (message index, output, ticks) reached before the output grew; None once it has (records go straight in)
        self._pending: list[tuple[int, int, int]] | None = []

    def reach(self) -> None:
        """The next item goes to the loop's body now."""
        positions = self._positions
        index = self.indices[self._handed]
        self._handed += 1
        if self._pending is not None:
            self._pending.append((index, positions.produced, self._budget.ticks))
            self._commit_if_written()
            return
        positions.starts[index] = positions.produced
        positions.reached_ticks[index] = self._budget.ticks

    def end(self) -> None:
        """The loop ended: where the last message ends, if it handed every item out and the last is the last message."""
        positions = self._positions
        self._commit_if_written()
        if self._pending is None and not self._ended and self._handed == len(self.items) and self.indices[-1] == positions.count - 1:
            positions.end = positions.produced
        self._ended = True

    def _commit_if_written(self) -> None:
        positions = self._positions
        if self._pending is None or positions.produced == self._began:
            return
        for index, produced, ticks in self._pending:
            positions.starts[index] = produced
            positions.reached_ticks[index] = ticks
        self._pending = None

    def __iter__(self) -> MessageLoop:
        return self

    def __next__(self) -> Any:
        position = self._next
        if position >= len(self.items):
            self.end()
            raise StopIteration
        self._next = position + 1
        self._budget.tick()
        self.reach()
        return self.items[position]
