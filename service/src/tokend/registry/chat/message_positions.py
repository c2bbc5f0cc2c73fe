"""`MessagePositions`: where a chat template's output stood each time one of its `{% for %}` loops reached a
message, recorded during one render: the per-message spans of a chat whose prefixes are too many to render.

Per-message spans are defined by prefix renders (template_format: message k starts where the render of
`messages[:k]` ends), one render per message, so their cost grows with the square of the chat's length (a
300-message Qwen3 chat with tools: 1.4 s of renders for a 10 ms render of the whole). This records, in the
one render of the whole, the output length (and the render's work, in budget ticks) each time a loop over
the messages list, or over a list of its messages (`messages[1:]`, `messages[::-1]`), hands a message to
its body. Of the loops that reach messages in increasing order, the last to reach message k gives message
k's *candidate* boundary; the one that reached the last message gives, when it ends, the candidate end of
the last message. Candidates are where a template's loop is, not the prefix-render definition: a template
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

Not handled: a loop whose body's output is captured (inside a macro or a `{% set %}` block) records where
the output stood before the capture; such candidates are wrong, never the ids (spans_exact is False for
every candidate).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_PREFIX_TICKS", "PREFIX_TIME_SHARE", "MessageLoop", "MessagePositions"]

# The prefix renders of one chat may do at most this much work, as `prefix_ticks` estimates it (about 0.5 s
# of a quiet worker's renders: Qwen3 with 8 tools and tool calls, ~175 messages; docs/decisions.md); past it
# the spans come from the loops. Counted in hooks, not seconds, so that a chat gets the same spans on every
# machine and under any load ...
MAX_PREFIX_TICKS = 300_000
# ... unless the prefix renders run out of this share of the time the render of the whole left them.
PREFIX_TIME_SHARE = 0.5


class MessagePositions:
    """The records of one render over `messages` (the list the template sees)."""

    def __init__(self, messages: list) -> None:
        self.count = len(messages)
        # id(message) -> its index; None where one object stands for two messages (its loop is not followed)
        self._index: dict[int, int | None] = {}
        for index, message in enumerate(messages):
            key = id(message)
            self._index[key] = None if key in self._index else index
        self._messages = messages  # kept alive: the ids above stay theirs
        self.loops: list[MessageLoop] = []  # in the order they started
        self.produced = 0  # the render's output so far, in characters (sandbox.render_template keeps it)
        self.total_ticks = 0  # the whole render's work (set when it ends)

    def loop(self, items: list, budget: Any) -> MessageLoop | None:
        """A loop over `items` (a list), when every item is one of the messages: its recording iterator."""
        if not items or type(items) is not list:
            return None
        index = self._index
        indices = [index.get(id(item)) for item in items]
        if any(position is None for position in indices):
            return None
        loop = MessageLoop(items, indices, self, budget)
        self.loops.append(loop)
        return loop

    def candidates(self) -> list[int | None]:
        """Where each message starts and (last entry) where the last one ends, by the loops that reached the
        messages in increasing order, the later loop winning; None where no such loop reached it."""
        found: list[int | None] = [None] * (self.count + 1)
        for loop in self.loops:
            if not loop.forward():
                continue
            for index, (position, _) in zip(loop.indices, loop.reached):
                found[index] = position
            if loop.ended is not None and loop.indices[-1] == self.count - 1 and len(loop.reached) == len(loop.indices):
                found[self.count] = loop.ended
        return found

    def prefix_ticks(self, add_generation_prompt: bool) -> list[int]:
        """About the work of rendering each prefix `messages[:k]` (k <= count): what the whole had done when its
        loop reached message k (the whole's work where no loop did, and for k == count when the whole was
        rendered with a generation prompt; 0 without one: that prefix is the whole, not rendered again)."""
        reached: list[int | None] = [None] * self.count
        for loop in self.loops:
            if loop.forward():
                for index, (_, ticks) in zip(loop.indices, loop.reached):
                    reached[index] = ticks
        costs = [self.total_ticks if ticks is None else ticks for ticks in reached]
        return costs + [self.total_ticks if add_generation_prompt else 0]


class MessageLoop:
    """The iterator a `{% for %}` over messages gets: hands the items out, recording (output length, ticks)
    as each one goes to the loop's body, and the output length when the loop ends. A loop with `loop.*`
    reads its items through a LoopContext, which looks one item ahead (`loop.last`): that one records in
    `CheckedLoopContext.__next__` instead (template_code_hooks), when the item is handed to the body."""

    __slots__ = ("items", "indices", "reached", "ended", "_positions", "_budget", "_next")

    def __init__(self, items: list, indices: list, positions: MessagePositions, budget: Any) -> None:
        self.items = items
        self.indices = indices  # message index of each item
        self.reached: list[tuple[int, int]] = []  # (output length, ticks) as each item reached the body
        self.ended: int | None = None  # output length when the loop ended
        self._positions = positions
        self._budget = budget
        self._next = 0

    def forward(self) -> bool:
        indices = self.indices
        return all(a < b for a, b in zip(indices, indices[1:]))

    def reach(self) -> None:
        """The next item goes to the loop's body now."""
        positions = self._positions
        self.reached.append((positions.produced, self._budget.ticks))

    def end(self) -> None:
        if self.ended is None:
            self.ended = self._positions.produced

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
