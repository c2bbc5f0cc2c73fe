"""Chats that a reference tokenizes as one string (transformers): build the string, then cut it into segments.

transformers' `apply_chat_template(tokenize=True)` renders one string and tokenizes it with every added
token recognised, so the ids are: each special-token text -> its id, each stretch of text between two of
them encoded as a whole. `TextBuilder` collects the pieces of such a string with the message each came
from, and `build` finds the special tokens the way the engine does (leftmost, longest at one offset) and
returns the segments, text stretches carrying the offsets where a new message starts inside them.

    >>> builder = TextBuilder()
    >>> builder.add("<|im_start|>user\\n", owner=0); builder.add("Hi", owner=0, content=True)
    >>> builder.build(frozenset({"<|im_start|>"}), content_specials=True, message_count=1).segments
    (Segment(text='<|im_start|>', special=True, owner=0, splits=()), Segment(text='user\\nHi', ...))

`content_specials=False` keeps special-token text inside content pieces as text (the safe rule); with
True, content is tokenized like the rest (what transformers does: a user who writes "<|im_end|>" in a
message produces the real token).
"""

from __future__ import annotations

from bisect import bisect_right

from tokend.engine.special_tokens import special_token_regex
from tokend.registry.chat.segments import RenderedChat, Segment

__all__ = ["TextBuilder"]


class TextBuilder:
    def __init__(self) -> None:
        self._texts: list[str] = []
        self._owners: list[int | None] = []
        self._content: list[bool] = []

    def add(self, text: str, owner: int | None, *, content: bool = False) -> None:
        if text:
            self._texts.append(text)
            self._owners.append(owner)
            self._content.append(content)

    def build(
        self, special_tokens: frozenset[str], *, content_specials: bool, message_count: int, spans_exact: bool = True
    ) -> RenderedChat:
        full = "".join(self._texts)
        starts = []  # character offset of each piece
        position = 0
        for text in self._texts:
            starts.append(position)
            position += len(text)

        def piece_at(offset: int) -> int:
            return bisect_right(starts, offset) - 1

        matches = []
        if special_tokens and full:
            for match in special_token_regex(special_tokens).finditer(full):
                if not content_specials:
                    first, last = piece_at(match.start()), piece_at(match.end() - 1)
                    if any(self._content[index] for index in range(first, last + 1)):
                        continue
                matches.append((match.start(), match.end()))

        segments: list[Segment] = []

        def add_text(start: int, end: int) -> None:
            if start >= end:
                return
            first = piece_at(start)
            owner = self._owners[first]
            splits = []
            current = owner
            for index in range(first + 1, len(starts)):
                if starts[index] >= end:
                    break
                if self._owners[index] != current:
                    current = self._owners[index]
                    splits.append((starts[index] - start, current))
            segments.append(Segment(full[start:end], owner=owner, splits=tuple(splits)))

        position = 0
        for start, end in matches:
            add_text(position, start)
            segments.append(Segment(full[start:end], special=True, owner=self._owners[piece_at(start)]))
            position = end
        add_text(position, len(full))
        return RenderedChat(tuple(segments), message_count, spans_exact)
