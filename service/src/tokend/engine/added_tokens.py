"""Added tokens as Hugging Face `tokenizers` matches them in text (its `AddedVocabulary`).

An added token is matched as a whole string before any pre-tokenizing, with these options:
- `special`: tokend applies tiktoken's policy to it (`allowed_special` / `disallowed_special`); a
  non-special added token is always matched, as Hugging Face does.
- `normalized`: matched in the normalized text (after NFC, say) instead of the raw text.
- `single_word`: only where neither the character before nor the one after is a word character.
- `lstrip` / `rstrip`: the match takes the whitespace to its left / right with it.

Matching is leftmost-longest over all added tokens of one kind (raw or normalized), non-overlapping,
continuing after each match's own end; a match that is skipped (a `single_word` token inside a word, a
special token the call does not allow) still consumes its text, exactly as Hugging Face's trie does.

>>> matcher = AddedTokenMatcher([AddedToken("<|im_end|>", 151645), AddedToken("<think>", 151667, special=False, rstrip=True)])
>>> matcher.split("a<|im_end|><think>  b", active=lambda token: True)
['a', 151645, 151667, 'b']

Not handled: the overlapping pieces Hugging Face produces when a token's `rstrip` whitespace holds the
start of the next match (a whitespace-only added token right after an rstrip one); here the second match
starts where the first one's whitespace ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from .literal_alternation import literal_alternation
from .prefix_scan import PrefixScan

__all__ = ["AddedToken", "AddedTokenMatcher"]

# Used with pos/endpos, so each check costs what it reads: `match(text, pos)` anchors at pos; the reverse
# pattern's `match(text, pos, endpos)` anchors at endpos and reads backwards. \s is Unicode White_Space and
# \w is [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}], as in Rust's regex crate, which Hugging Face uses here.
# They need the `regex` module (Python's `re` has neither these classes nor reverse matching), imported
# the first time a token with single_word/lstrip/rstrip occurs: `import tokend` does not pay for it.
@cache
def _space_and_word_patterns():  # -> (word character, trailing space (reverse), leading space)
    import regex

    return regex.compile(r"\w"), regex.compile(r"(?r)\s*"), regex.compile(r"\s*")


@dataclass(frozen=True)
class AddedToken:
    """One added token (the fields of an `added_tokens` entry of tokenizer.json)."""

    content: str
    id: int
    special: bool = True
    lstrip: bool = False
    rstrip: bool = False
    single_word: bool = False
    normalized: bool = False


class AddedTokenMatcher:
    """Finds the added tokens of one kind (raw or normalized) in text. Immutable; thread-safe."""

    def __init__(self, tokens: Sequence[AddedToken]) -> None:
        self._by_content = {token.content: token for token in tokens if token.content}
        ordered = sorted(self._by_content, key=lambda content: (-len(content), content))
        # The longest token at each offset, as a trie (literal_alternation: 20,000 tokens sharing a prefix
        # cost as few as 20), in `re`: the same matches as `regex`, compiled faster.
        self._regex = re.compile(literal_alternation(ordered)) if ordered else None
        # Cheap test first: the tokens themselves where the core's scan takes them (a few groups of tokens
        # that share their first two characters: Qwen's 26 make 3), else their 1-2 character prefixes, which
        # no token can match without. Code holds Qwen's "</" and "<t" often: looking for those alone sent
        # ~1 text of 3 to the regex below (~10 % of a count of code already seen).
        whole = PrefixScan(ordered)
        self.prefix_scan = whole if whole.native else PrefixScan(content[:2] for content in ordered)

    def __bool__(self) -> bool:
        return self._regex is not None

    def may_occur(self, text: str) -> bool:
        """False when no token can be in `text` (a fast check)."""
        return self.prefix_scan.found_in(text)

    def split(self, text: str, *, active: Callable[[AddedToken], bool]) -> list[str | int]:
        """`text` as text pieces (str) and token ids (int), in order; only `active` tokens become ids."""
        if not self.may_occur(text):
            return [text] if text else []
        out: list[str | int] = []
        end_of_last = 0
        for match in self._regex.finditer(text):
            token = self._by_content[match.group()]
            if not active(token):
                continue
            start, stop = match.span()
            if token.single_word or token.lstrip or token.rstrip:
                word_character, trailing_space, leading_space = _space_and_word_patterns()
                if token.single_word and (
                    (start > 0 and word_character.match(text, start - 1)) or word_character.match(text, stop)
                ):
                    continue
                if token.lstrip:
                    start = trailing_space.match(text, end_of_last, start).start()
                if token.rstrip:
                    stop = leading_space.match(text, stop).end()
            if start > end_of_last:
                out.append(text[end_of_last:start])
            out.append(token.id)
            end_of_last = max(stop, end_of_last)
        if end_of_last < len(text):
            out.append(text[end_of_last:])
        return out
