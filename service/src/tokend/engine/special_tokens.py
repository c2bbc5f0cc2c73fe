"""Special-token policy, with tiktoken's exact semantics (including its quirks).

`encode(text, allowed_special=..., disallowed_special=...)`:
- `allowed_special="all"` means every special token of the encoding; `disallowed_special="all"` means every
  special token that is not allowed.
- Disallowed strings are searched first; a match raises, even if the string is also allowed, and even if it
  is not a special token of the encoding at all (tiktoken searches for whatever strings it is given).
- Allowed strings that are not special tokens are ignored; an allowed special token becomes its id.
- A special token that is neither allowed nor disallowed is encoded as plain text.

>>> resolve_policy({"<|a|>", "<|b|>"}, allowed_special={"<|a|>"}, disallowed_special="all")
(frozenset({'<|a|>'}), frozenset({'<|b|>'}))

Deviation: a plain string other than "all" raises `TypeError` (tiktoken would treat the string as a set of
its characters). Not handled: the error message wording of tiktoken's `ValueError` is kept, but which token is reported
when two disallowed strings match at the same offset is "the longest" here (tiktoken's choice depends on
hash order).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Set
from functools import lru_cache

from ..errors import quoted
from .literal_alternation import literal_alternation
from .prefix_scan import PrefixScan

__all__ = ["SpecialTokenSet", "is_default_policy", "resolve_policy", "special_token_regex", "special_token_starts"]

# Up to this many tokens are searched for themselves, straight away: a long needle skips ahead (one
# `in` of a cl100k token runs at ~3,800 Mchar/s on the corpus).
_DIRECT_TOKEN_SCANS = 3
# Otherwise the distinct 2-character prefixes go first (a text without any holds no special token; see
# PrefixScan: a memchr of each first character, then the prefixes where it occurs). When a prefix occurs, up
# to _WHOLE_TOKEN_SCANS tokens are then searched for themselves (else "maybe"). cl100k's five tokens: the
# prefix check took the whole check from ~790 to ~1,270 Mchar/s (it was ~14 % of encode on English text).
_WHOLE_TOKEN_SCANS = 16


def is_default_policy(allowed_special, disallowed_special) -> bool:
    """tiktoken's default: nothing allowed, every special token disallowed (an error if one is in the text).

    >>> is_default_policy(frozenset(), "all"), is_default_policy("all", ())
    (True, False)
    """
    return not allowed_special and disallowed_special == "all" and isinstance(disallowed_special, str)


def resolve_policy(
    special_tokens: Set[str],
    *,
    allowed_special: str | Collection[str],
    disallowed_special: str | Collection[str],
) -> tuple[frozenset[str], frozenset[str]]:
    """(allowed special tokens, disallowed strings) for one call; both may be empty."""
    if isinstance(allowed_special, str):
        if allowed_special != "all":
            raise TypeError(
                f"allowed_special must be 'all' or a set of strings, got the string {quoted(allowed_special)}; "
                f"wrap a single token in a set: allowed_special={{{quoted(allowed_special)}}}"
            )
        allowed = frozenset(special_tokens)
    else:
        allowed = frozenset(allowed_special) & special_tokens
    if isinstance(disallowed_special, str):
        if disallowed_special != "all":
            raise TypeError(
                f"disallowed_special must be 'all' or a collection of strings, got the string "
                f"{quoted(disallowed_special)}; wrap a single token in a tuple: disallowed_special=({quoted(disallowed_special)},)"
            )
        # tiktoken subtracts the caller's allowed_special as given (non-special strings are irrelevant here).
        disallowed = frozenset(special_tokens) - allowed
    else:
        # An empty string matches at offset 0 and therefore raises, as in tiktoken.
        disallowed = frozenset(disallowed_special)
    return allowed, disallowed


@lru_cache(maxsize=128)
def special_token_regex(tokens: frozenset[str]) -> re.Pattern:
    """A regex matching any of `tokens`; the longest wins at the same offset (deterministic).

    The tokens as a trie (literal_alternation): an offset costs the characters of the longest token there,
    not an attempt per token (harmony's 1,091 all start with "<|"). In Python's `re`: it finds what
    `regex` would, compiles faster, without `import regex` on the way to a first encode.
    """
    return re.compile(literal_alternation(tokens) if tokens else "(?!)")  # no token: never matches


@lru_cache(maxsize=128)
def special_token_starts(tokens: frozenset[str]) -> re.Pattern:
    """A match of no width at every offset where one of `tokens` starts, its group 1 the longest token there:
    `special_token_regex`'s trie inside a look-ahead, so the occurrences found may overlap (every offset is
    tried, not only those after the last match). The union of these spans is the union of every occurrence
    of every token (a shorter token at the same offset lies inside the longest), in one pass over the text.

        >>> [(m.start(), m.group(1)) for m in special_token_starts(frozenset({"<|a|>", "a|>"})).finditer("<|a|>")]
        [(0, '<|a|>'), (2, 'a|>')]
    """
    tokens = frozenset(token for token in tokens if token)
    return re.compile(f"(?=({literal_alternation(tokens)}))" if tokens else "(?!)")


def split_at_specials(text: str, allowed: frozenset[str]) -> Iterator[tuple[str, str | None]]:
    """`text` as (ordinary text, the allowed special token after it) pairs, the last with None: how
    `encode` / `count` of every family treat allowed special tokens.

    >>> list(split_at_specials("a<|x|>b", frozenset({"<|x|>"})))
    [('a', '<|x|>'), ('b', None)]
    """
    start = 0
    for match in special_token_regex(allowed).finditer(text):
        yield text[start : match.start()], match.group()
        start = match.end()
    yield text[start:], None


class SpecialTokenSet:
    """The special tokens of one encoding, with a cheap test for "none of them can be in this text".

    Encodings with a thousand special tokens (o200k_harmony, Tekken) would otherwise search for a thousand
    strings in every text. Their tokens share a few 2-character prefixes ("<|", "[I", ...): no prefix in the
    text, no token in it. A few tokens (cl100k's five) are searched for themselves.

    >>> SpecialTokenSet(frozenset({"<|a|>", "<|bb|>"})).may_occur("plain text")
    False
    """

    def __init__(self, tokens: frozenset[str]) -> None:
        self.tokens = tokens
        direct = len(tokens) <= _DIRECT_TOKEN_SCANS
        self._prefixes = PrefixScan(tokens if direct else {token[:2] for token in tokens})
        self._whole = tuple(sorted(tokens)) if not direct and len(tokens) <= _WHOLE_TOKEN_SCANS else None
        # prefix_found(text): may_occur's first test alone (False: no token in the text), one call for the
        # callers that take a shortcut when it is False (Encoding.encode / count under the default policy)
        self.prefix_found = self._prefixes.found_in

    @property
    def prefixes(self) -> tuple[str, ...]:
        """What `may_occur` looks for first: a text with none of these strings holds none of the tokens."""
        return self._prefixes.strings

    def may_occur(self, text: str) -> bool:
        """False when no token can occur in `text` (True: one may)."""
        if not self._prefixes.found_in(text):
            return False
        if self._whole is None:
            return True
        for token in self._whole:
            if token in text:
                return True
        return False
