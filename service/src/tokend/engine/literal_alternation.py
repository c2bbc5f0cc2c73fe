"""A regex that finds any of many literal strings, the longest at each offset, in time that does not grow
with how many there are: the strings as a trie of nested groups.

Why: a plain alternation ``tok1|tok2|...`` (longest first) makes Python's `re` try every string at every
offset whose first character could start one. Harmony's 1,091 special tokens all start with "<|", so each
"<|" in a text cost ~1,000 attempts (o200k_harmony's default disallowed-special check: 2.5 s of CPU per MB
of "<|<|<|..."), and 20,000 added tokens "aa00000".."aa19999" cost ~50 µs a character of "aaaa..." (issue 13).
As a trie, each offset costs at most one branch per character of the longest string that matches there,
each branch choosing among the distinct next characters.

The match at each offset is the one the longest-first alternation finds (the longest string that starts
there): a node that is itself a string is an optional group, tried deeper first. Chains of single children
are one literal. Nesting is capped at MAX_NESTING groups (`re` compiles nested groups recursively: a few
hundred exceed Python's recursion limit): below that depth a node's remaining strings are a longest-first
alternation again — the same matches, at the old cost, for string sets only a crafted file has (more than
64 strings each a prefix of the next).

    >>> import re
    >>> pattern = re.compile(literal_alternation(["<|end|>", "<|endoftext|>", "<|start|>"]))
    >>> [m.group() for m in pattern.finditer("a<|endoftext|>b<|end|><|start")]
    ['<|endoftext|>', '<|end|>']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["literal_alternation", "MAX_NESTING"]

MAX_NESTING = 64


def literal_alternation(strings: Iterable[str]) -> str:
    """A pattern matching, at an offset, the longest of `strings` that starts there. The empty string, when
    given, matches (empty) wherever no other does, as in the alternation. `strings` must not be empty."""
    ordered = sorted(set(strings))
    if not ordered:
        raise ValueError("literal_alternation needs at least one string")
    return _node(ordered, 0, 0)


def _node(strings: list[str], at: int, depth: int) -> str:
    """The suffixes strings[i][at:] of sorted strings sharing their first `at` characters; when the first
    of them has no suffix (it is the shared prefix itself), the group is optional: matched deeper if it can
    be, else ending here."""
    terminal = len(strings[0]) == at
    rest = strings[1:] if terminal else strings
    if not rest:
        return ""
    if depth >= MAX_NESTING:
        suffixes = sorted((string[at:] for string in rest), key=lambda suffix: (-len(suffix), suffix))
        branches = [re.escape(suffix) for suffix in suffixes]
    else:
        branches = []
        start = 0
        while start < len(rest):
            first = rest[start][at]
            end = start
            while end < len(rest) and rest[end][at] == first:
                end += 1
            group = rest[start:end]
            if len(group) == 1:
                branches.append(re.escape(group[0][at:]))
            else:
                shared = os.path.commonprefix(group)
                branches.append(re.escape(shared[at:]) + _node(group, len(shared), depth + 1))
            start = end
    body = "|".join(branches)
    if terminal:
        return f"(?:{body})?"
    return body if len(branches) == 1 else f"(?:{body})"
