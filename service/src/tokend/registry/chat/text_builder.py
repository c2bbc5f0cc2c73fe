"""Chats that a reference tokenizes as one string (transformers): build the string, then cut it into segments.

transformers' `apply_chat_template(tokenize=True)` renders one string and tokenizes it with every added
token recognised, so the ids are: each special-token text -> its id, each stretch of text between two of
them encoded as a whole. `TextBuilder` collects the pieces of such a string with the message each came
from, and `build` finds the special tokens the way the engine does (leftmost, longest at one offset) and
returns the segments, text stretches carrying the offsets where a new message starts inside them. Special
tokens are looked for inside each piece: a format never splits one token's text across two pieces.

    >>> builder = TextBuilder(frozenset({"<|im_start|>"}), content_specials=True)
    >>> builder.token("<|im_start|>", owner=0); builder.add("user\\n", owner=0); builder.add("Hi", owner=0, content=True)
    >>> builder.build(message_count=1).segments
    (Segment(text='<|im_start|>', special=True, owner=0, splits=()), Segment(text='user\\nHi', ...))

`content_specials=False` keeps special-token text inside content pieces as text (the safe rule); with
True, content is tokenized like the rest (what transformers does: a user who writes "<|im_end|>" in a
message produces the real token).
"""

from __future__ import annotations

from functools import lru_cache

from tokend.registry.chat.segments import RenderedChat, Segment

__all__ = ["TextBuilder"]


class TextBuilder:
    """Collects (text, owner) pieces. `special_tokens` are the encoding's; `content_specials` is the rule for
    special-token text inside content (True: it becomes special tokens, as transformers does)."""

    def __init__(self, special_tokens: frozenset[str], *, content_specials: bool) -> None:
        self._special_tokens = special_tokens
        self._content_specials = content_specials
        self._pieces: list[tuple[str, int | None, int]] = []  # (text, owner, _TEXT | _SCAN | _SPECIAL)

    def add(self, text: str, owner: int | None, *, content: bool = False) -> None:
        """Template text (`content=False`, never searched: formats name their special tokens with `token`)
        or caller content (searched for special tokens when the rule says so)."""
        if text:
            self._pieces.append((text, owner, _SCAN if content and self._content_specials else _TEXT))

    def add_rendered(self, text: str, owner: int | None) -> None:
        """Text in which template and content cannot be told apart (a Jinja template's output): searched."""
        if text:
            self._pieces.append((text, owner, _SCAN))

    def template(self, text: str, owner: int | None) -> None:
        """The format's own text, special tokens found in it the way transformers finds them (cached: a
        format's template strings are few)."""
        for piece, special in _split_template(text, self._special_tokens):
            self._pieces.append((piece, owner, _SPECIAL if special else _TEXT))

    def token(self, text: str, owner: int | None) -> None:
        """A special token of the format; plain text when the model does not define it (e.g. `<tool_call>`
        is a special token in Qwen's vocabulary and text in other ChatML models), as transformers does."""
        self._pieces.append((text, owner, _SPECIAL if text in self._special_tokens else _TEXT))

    def build(self, *, message_count: int, spans_exact: bool = True) -> RenderedChat:
        """Segments: special tokens, and the text between them joined into one segment that remembers where
        its owner changes."""
        segments: list[Segment] = []
        run: list[tuple[str, int | None]] = []  # text pieces of the current stretch between special tokens
        search = _searcher(self._special_tokens)
        for text, owner, kind in self._pieces:
            if kind == _SPECIAL:
                _flush(run, segments)
                segments.append(Segment(text, special=True, owner=owner))
                continue
            if kind == _TEXT or search is None or not search[0](text):
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


_TEXT, _SCAN, _SPECIAL = 0, 1, 2


@lru_cache(maxsize=4096)
def _split_template(text: str, special_tokens: frozenset[str]) -> tuple[tuple[str, bool], ...]:
    search = _searcher(special_tokens)
    if search is None or not search[0](text):
        return ((text, False),)
    pieces: list[tuple[str, bool]] = []
    position = 0
    for match in search[1](text):
        if match.start() > position:
            pieces.append((text[position : match.start()], False))
        pieces.append((match.group(), True))
        position = match.end()
    if position < len(text):
        pieces.append((text[position:], False))
    return tuple(pieces)


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
    """(quick test, finditer) for the special tokens, with the engine's rule: leftmost, then longest.

    Special tokens are short and start with one of a few characters ("<", "["), so a candidate position
    is found with `str.find` and tested with one set lookup per distinct token length; text without any of
    the first characters is skipped outright. (A regex alternation of 256 or 1,100 tokens costs ~15 µs per
    short piece; this costs ~1 µs.)"""
    if not special_tokens:
        return None
    first = "".join(sorted({token[0] for token in special_tokens}))
    lengths = sorted({len(token) for token in special_tokens}, reverse=True)

    def finditer(text: str):
        position = 0
        while True:
            candidates = [found for found in (text.find(char, position) for char in first) if found >= 0]
            if not candidates:
                return
            start = min(candidates)
            for length in lengths:
                token = text[start : start + length]
                if len(token) == length and token in special_tokens:
                    yield _Match(start, start + length, token)
                    position = start + length
                    break
            else:
                position = start + 1

    if len(first) == 1:
        return (lambda text, char=first: char in text), finditer
    return (lambda text: any(char in text for char in first)), finditer


class _Match:
    __slots__ = ("_start", "_end", "_token")

    def __init__(self, start: int, end: int, token: str) -> None:
        self._start, self._end, self._token = start, end, token

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._end

    def group(self) -> str:
        return self._token
