"""Chats that a reference tokenizes as one string (transformers): build the string, then cut it into segments.

transformers' `apply_chat_template(tokenize=True)` renders one string and tokenizes it with every added
token recognised, so the ids are: each special-token text -> its id, each stretch of text between two of
them encoded as a whole. `TextBuilder` collects the pieces of such a string with the message each came
from, and `build` finds the special tokens the way the engine does (leftmost, longest at one offset) and
returns the segments, text stretches carrying the offsets where a new message starts inside them. Special
tokens are looked for inside each piece: a format never splits one token's text across two pieces.

    >>> builder = TextBuilder()
    >>> builder.add("<|im_start|>user\\n", owner=0); builder.add("Hi", owner=0, content=True)
    >>> builder.build(frozenset({"<|im_start|>"}), content_specials=True, message_count=1).segments
    (Segment(text='<|im_start|>', special=True, owner=0, splits=()), Segment(text='user\\nHi', ...))

`content_specials=False` keeps special-token text inside content pieces as text (the safe rule); with
True, content is tokenized like the rest (what transformers does: a user who writes "<|im_end|>" in a
message produces the real token).
"""

from __future__ import annotations

from functools import lru_cache

from tokend.engine.special_tokens import special_token_regex
from tokend.registry.chat.segments import RenderedChat, Segment

__all__ = ["TextBuilder"]


class TextBuilder:
    def __init__(self) -> None:
        self._pieces: list[tuple[str, int | None, bool]] = []  # (text, owner, is content)

    def add(self, text: str, owner: int | None, *, content: bool = False) -> None:
        if text:
            self._pieces.append((text, owner, content))

    def build(
        self, special_tokens: frozenset[str], *, content_specials: bool, message_count: int, spans_exact: bool = True
    ) -> RenderedChat:
        """Segments: special tokens found inside each piece (the formats never split a token's text across
        two pieces), text between them joined into one segment that remembers where its owner changes."""
        segments: list[Segment] = []
        run: list[tuple[str, int | None]] = []  # text pieces of the current stretch between special tokens
        search = _searcher(special_tokens)
        for text, owner, content in self._pieces:
            if search is None or (content and not content_specials) or not search[0](text):
                run.append((text, owner))
                continue
            position = 0
            for match in search[1](text):
                if match.start() > position:
                    run.append((text[position : match.start()], owner))
                _flush(run, segments)
                segments.append(Segment(match.group(), special=True, owner=owner))
                position = match.end()
            if position < len(text):
                run.append((text[position:], owner))
        _flush(run, segments)
        return RenderedChat(tuple(segments), message_count, spans_exact)


def _flush(run: list[tuple[str, int | None]], segments: list[Segment]) -> None:
    if not run:
        return
    owner = run[0][1]
    if len(run) == 1:
        segments.append(Segment(run[0][0], owner=owner))
    else:
        splits = []
        offset, current = 0, owner
        for text, piece_owner in run:
            if piece_owner != current:
                splits.append((offset, piece_owner))
                current = piece_owner
            offset += len(text)
        segments.append(Segment("".join(text for text, _ in run), owner=owner, splits=tuple(splits)))
    run.clear()


@lru_cache(maxsize=64)
def _searcher(special_tokens: frozenset[str]):
    """(quick test, finditer) for the special tokens: the quick test looks for their first characters
    (usually just "<" or "["), so text without any skips the regex."""
    if not special_tokens:
        return None
    first = "".join(sorted({token[0] for token in special_tokens}))
    finditer = special_token_regex(special_tokens).finditer
    if len(first) == 1:
        return (lambda text, char=first: char in text), finditer
    return (lambda text: any(char in text for char in first)), finditer
