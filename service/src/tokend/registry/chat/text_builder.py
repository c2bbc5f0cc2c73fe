"""Chats that a reference tokenizes as one string (transformers): build the string, then cut it into segments.

transformers' `apply_chat_template(tokenize=True)` renders one string and tokenizes it with every added
token recognised, so the ids are: each special-token text -> its id, each stretch of text between two of
them encoded as a whole. `TextBuilder` collects the pieces of such a string with the message each came
from, and `build` finds the special tokens the way the engine does (leftmost, longest at one offset) and
returns the parts, text stretches carrying the offsets where a new message starts inside them. Special
tokens are looked for inside each piece: a format never splits one token's text across two pieces.

    >>> builder = TextBuilder(frozenset({"<|im_start|>"}), content_specials=True)
    >>> builder.token("<|im_start|>", owner=0); builder.add("user\\n", owner=0); builder.add("Hi", owner=0, content=True)
    >>> builder.build(message_count=1).parts
    ['<|im_start|>', 'user\\nHi']

`content_specials=False` keeps special-token text inside content pieces as text (the safe rule); with
True, content is tokenized like the rest (what transformers does: a user who writes "<|im_end|>" in a
message produces the real token).
"""

from __future__ import annotations

from functools import lru_cache

from tokend.registry.chat.segments import PartsBuilder, RenderedChat, SpecialText

__all__ = ["TextBuilder", "special_text_prefixes"]


class TextBuilder:
    """Collects (text, owner) pieces in one pass. `special_tokens` are the encoding's; `content_specials` is the
    rule for special-token text inside content (True: it becomes special tokens, as transformers does)."""

    __slots__ = ("_special_tokens", "_content_specials", "_search", "_out", "_run", "_run_owner", "_owner", "_chars", "_splits")

    def __init__(self, special_tokens: frozenset[str], *, content_specials: bool) -> None:
        self._special_tokens = special_tokens
        self._content_specials = content_specials
        self._search = _searcher(special_tokens)
        self._out = PartsBuilder()
        self._run: list[str] = []  # texts of the stretch since the last special token
        self._run_owner: int | None = None  # owner of its first text
        self._owner: int | None = None  # owner of its last text
        self._chars = 0  # characters in it so far (only needed where the owner changes inside it)
        self._splits: list[tuple[int, int]] = []  # (character offset, owner) where the owner changes inside it

    def add(self, text: str, owner: int | None, *, content: bool = False) -> None:
        """Template text (`content=False`, never searched: formats name their special tokens with `token`)
        or caller content (searched for special tokens when the rule says so)."""
        if not text:
            return
        if content and self._content_specials and self._search is not None and self._search[0](text):
            self._scan(text, owner)
        else:
            self._text(text, owner)

    def add_rendered(self, text: str, owner: int | None) -> None:
        """Text in which template and content cannot be told apart (a Jinja template's output): searched."""
        if not text:
            return
        if self._search is not None and self._search[0](text):
            self._scan(text, owner)
        else:
            self._text(text, owner)

    def template(self, text: str, owner: int | None) -> None:
        """The format's own text, special tokens found in it the way transformers finds them (cached: a
        format's template strings are few)."""
        for piece in _split_template(text, self._special_tokens):
            if type(piece) is str:
                self._text(piece, owner)
            else:
                self._special(piece, owner)

    def token(self, text: str, owner: int | None) -> None:
        """A special token of the format; plain text when the model does not define it (e.g. `<tool_call>`
        is a special token in Qwen's vocabulary and text in other ChatML models), as transformers does."""
        if text in self._special_tokens:
            self._special(_special(text), owner)
        else:
            self._text(text, owner)

    def build(self, *, message_count: int, spans_exact: bool = True) -> RenderedChat:
        """Parts: special tokens, and the text between them joined into one part that remembers where
        its owner changes."""
        self._flush()
        return self._out.build(message_count=message_count, spans_exact=spans_exact)

    def content_scanner(self):
        """The quick test for special-token text in content (None when content is never searched), for a
        format that builds its parts itself unless content needs the search."""
        return self._search[0] if self._content_specials and self._search is not None else None

    # -- parts ------------------------------------------------------------------------------------------

    def _text(self, text: str, owner: int | None) -> None:
        run = self._run
        if not run:
            self._run_owner = self._owner = owner
            self._chars = len(text)
        else:
            if owner != self._owner:
                self._splits.append((self._chars, owner))
                self._owner = owner
            self._chars += len(text)
        run.append(text)

    def _special(self, token: SpecialText, owner: int | None) -> None:
        if self._run:
            self._flush()
        self._out.add(owner, token)

    def _scan(self, text: str, owner: int | None) -> None:
        position = 0
        for start, end, token in self._search[1](text):  # type: ignore[index]
            if start > position:
                self._text(text[position:start], owner)
            self._special(token, owner)
            position = end
        if position < len(text):
            self._text(text[position:], owner)

    def _flush(self) -> None:
        run = self._run
        if not run:
            return
        text = run[0] if len(run) == 1 else "".join(run)
        if self._splits:
            self._out.add_split(self._run_owner, text, tuple(self._splits))
            self._splits = []
        else:
            self._out.add(self._run_owner, text)
        run.clear()


@lru_cache(maxsize=4096)
def _special(text: str) -> SpecialText:
    return SpecialText(text)


@lru_cache(maxsize=4096)
def _split_template(text: str, special_tokens: frozenset[str]) -> tuple[str, ...]:
    """`text` as text and SpecialText pieces."""
    search = _searcher(special_tokens)
    if search is None or not search[0](text):
        return (text,)
    pieces: list[str] = []
    position = 0
    for start, end, token in search[1](text):
        if start > position:
            pieces.append(text[position:start])
        pieces.append(token)
        position = end
    if position < len(text):
        pieces.append(text[position:])
    return tuple(pieces)


@lru_cache(maxsize=64)
def special_text_prefixes(special_tokens: frozenset[str]) -> tuple[str, ...]:
    """Strings of which every special token starts with one: text holding none of them holds no special
    token (the quick test of the search below, and what count_chat's plain path refuses in content).

    >>> special_text_prefixes(frozenset({"<|im_start|>", "<|im_end|>", "<think>"}))
    ('<t', '<|')
    """
    prefixes = tuple(sorted({token[:2] for token in special_tokens}))
    if len(prefixes) > 16:  # many different prefixes: their first characters are fewer
        prefixes = tuple(sorted({token[0] for token in special_tokens}))
    return prefixes


@lru_cache(maxsize=64)
def _searcher(special_tokens: frozenset[str]):
    """(quick test, finditer) for the special tokens, with the engine's rule: leftmost, then longest.
    finditer yields (start, end, SpecialText).

    Every special token starts with one of a few short prefixes ("<|", "[" ...): text without any of
    them is skipped outright (one substring test per prefix, C speed), and inside text candidates are
    found with `str.find` and tested with one set lookup per distinct token length. (A regex alternation
    of 256 or 1,100 tokens costs ~15 us per short piece; this costs ~1 us, and nothing without a prefix.)"""
    if not special_tokens:
        return None
    prefixes = special_text_prefixes(special_tokens)
    lengths = sorted({len(token) for token in special_tokens}, reverse=True)

    def finditer(text: str):
        position = 0
        find = text.find
        # Each prefix's next place in the text (-1: none left), looked for again only once the search has
        # passed it: looked for after every token, a prefix the text no longer holds ("<t" of "<think>" in a
        # long chat of "<|im_start|>" turns) was scanned to the text's end each time, the square of its length
        # (10,000 messages of Qwen3: ~8 s of a count's ~9 s).
        found = [find(prefix) for prefix in prefixes]
        while True:
            for at, place in enumerate(found):
                if 0 <= place < position:
                    found[at] = find(prefixes[at], position)
            candidates = [place for place in found if place >= 0]
            if not candidates:
                return
            start = min(candidates)
            for length in lengths:
                token = text[start : start + length]
                if len(token) == length and token in special_tokens:
                    yield start, start + length, _special(token)
                    position = start + length
                    break
            else:
                position = start + 1

    # A one-character `in` is a memchr (~30 ns on 400 characters), a two-character one ~10 times that: the
    # first characters of the prefixes (usually just "<" or "[") rule out most text before the prefixes are looked for.
    firsts = "".join(sorted({prefix[0] for prefix in prefixes}))
    if len(prefixes) == 1:
        return (lambda text, prefix=prefixes[0], first=firsts: first in text and prefix in text), finditer
    if len(firsts) == 1:
        return (lambda text, first=firsts: first in text and any(prefix in text for prefix in prefixes)), finditer
    return (lambda text: any(prefix in text for prefix in prefixes)), finditer
