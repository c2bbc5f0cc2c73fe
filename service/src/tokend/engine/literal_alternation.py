"""A regex that finds any of many literal strings, the longest at each offset, in time that does not grow
with how many there are: the strings as a trie of nested groups.

Why: a plain alternation ``tok1|tok2|...`` (longest first) makes Python's `re` try every string at every
offset whose first character could start one. Harmony's 1,091 special tokens all start with "<|", so each
"<|" in a text cost ~1,000 attempts (o200k_harmony's default disallowed-special check: 2.5 s of CPU per MB
of "<|<|<|..."), and 20,000 added tokens "aa00000".."aa19999" cost ~50 µs a character of "aaaa..." (issue 13).
As a trie, each offset costs at most one branch per character of the longest string that matches there,
each branch choosing among the distinct next characters.

`re` tries a node's branches one after another too (~2 ns each when a branch starts with a literal), so a
node of more than MAX_FAN_OUT next characters is split into groups of consecutive characters, each behind a
look-ahead of its range, recursively: 20,000 tokens with 20,000 distinct first characters cost ~0.75 µs a
character of text made of those characters, where they cost ~40 µs (issue 13). Real vocabularies fan out by
15 at most (the models in the tests), and their patterns are what they were. A pattern whose first
characters are split this way starts with a class of them, which `re` otherwise reads off the first
branches' literals to skip text no string starts with.

The match at each offset is the one the longest-first alternation finds (the longest string that starts
there): a node that is itself a string is an optional group, tried deeper first. Chains of single children
are one literal. Nesting is capped at MAX_NESTING groups, range groups counted (`re` compiles nested groups
recursively: a few hundred exceed Python's recursion limit): below that depth a node's strings are, for
each next character, a longest-first alternation again — the same matches, at the old cost per string
sharing that character, for string sets only a crafted file has (branching at more than 64 depths, then many
strings sharing a character).

An offset costs as many steps as the text follows a string, and past MAX_NESTING the alternations' strings
are tried one by one: `check_literal_set` holds a model's tokens, at load, to strings of MAX_STRING_CHARS and
a trie within MAX_NESTING (2,000 added tokens "a" * k + "c", k < 2,000, cost ~1.3 ms a character of "aaa...";
branching at 70 depths and then 20,000 strings sharing "a", 154 µs). Other strings (a caller's) are not held
to it: the pattern still finds what the alternation finds, at that cost.

    >>> import re
    >>> pattern = re.compile(literal_alternation(["<|end|>", "<|endoftext|>", "<|start|>"]))
    >>> [m.group() for m in pattern.finditer("a<|endoftext|>b<|end|><|start")]
    ['<|endoftext|>', '<|end|>']
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

__all__ = ["check_literal_set", "literal_alternation", "MAX_FAN_OUT", "MAX_NESTING", "MAX_STRING_CHARS"]

MAX_NESTING = 64
# An offset costs up to one step per character of the longest string the text follows from there; a model's
# special and added tokens are held to this at load (check_literal_set). The real ones have 30 at most.
MAX_STRING_CHARS = 256
# A node's branches tried one after another; a node with more next characters is split into ranges.
MAX_FAN_OUT = 32


def literal_alternation(strings: Iterable[str]) -> str:
    """A pattern matching, at an offset, the longest of `strings` that starts there. The empty string, when
    given, matches (empty) wherever no other does, as in the alternation. `strings` must not be empty."""
    ordered = sorted(set(strings))
    if not ordered:
        raise ValueError("literal_alternation needs at least one string")
    pattern = _node(ordered, 0, 0)
    firsts = sorted({string[0] for string in ordered if string})
    if len(firsts) > MAX_FAN_OUT and "" not in ordered:
        # The range groups' look-aheads leave `re` without the set of first characters it skips text by
        # (what it reads off a pattern whose branches start with literals): given it as a class up front, a
        # character no string starts with costs one test. Characters past U+FFFF are a list in `re`'s
        # classes (tested one by one): past MAX_FAN_OUT ranges of them, their whole range instead.
        pattern = f"(?=[{_class_of(firsts)}]){pattern}"
    return pattern


def check_literal_set(strings: Iterable[str]) -> None:
    """Raise ValueError, naming the cause, unless `literal_alternation(strings)` costs a bounded number of steps
    an offset: every string at most MAX_STRING_CHARS characters, and the trie within MAX_NESTING groups (past
    it, a node's strings become alternations again, tried one by one). For a model's tokens, at load: a
    caller's own strings still get the alternation's answer, at its cost.

        >>> check_literal_set(["<|end|>", "<|start|>"])
        >>> check_literal_set(["a" * n for n in range(1, 100)])
        Traceback (most recent call last):
        ...
        ValueError: the strings nest more than 64 groups deep as a trie (a group wherever one string ends inside others or they part), as 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' does
    """
    ordered = sorted(set(strings))
    longest = max(ordered, key=len, default="")
    if len(longest) > MAX_STRING_CHARS:
        raise ValueError(f"{longest[:100]!r} has {len(longest):,} characters; at most {MAX_STRING_CHARS:,}")
    if ordered:
        depth, deepest = _deepest(ordered, 0, 0)
        if depth > MAX_NESTING:
            raise ValueError(
                f"the strings nest more than {MAX_NESTING} groups deep as a trie (a group wherever one string ends "
                f"inside others or they part), as {deepest[:100]!r} does"
            )


def _runs_by_next_character(strings: list[str], at: int) -> list[list[str]]:
    """Sorted strings (each longer than `at`) grouped by their character at `at`: each character's strings are
    one run, in order.

        >>> _runs_by_next_character(["ab", "ac", "b"], 0)
        [['ab', 'ac'], ['b']]
    """
    runs: list[list[str]] = []
    for string in strings:
        if runs and runs[-1][0][at] == string[at]:
            runs[-1].append(string)
        else:
            runs.append([string])
    return runs


def _deepest(strings: list[str], at: int, depth: int) -> tuple[int, str]:
    """The deepest group `_node` would open below this node, and a string that reaches it."""
    terminal = len(strings[0]) == at
    rest = strings[1:] if terminal else strings
    if not rest:
        return depth, strings[0]
    runs = _runs_by_next_character(rest, at)
    inner = depth + 1 + _range_levels(len(runs))
    deepest = (inner, rest[0])
    for group in runs:
        if len(group) > 1 and inner <= MAX_NESTING:
            deepest = max(deepest, _deepest(group, len(os.path.commonprefix(group)), inner))
    return deepest


def _node(strings: list[str], at: int, depth: int) -> str:
    """The suffixes strings[i][at:] of sorted strings sharing their first `at` characters; when the first
    of them has no suffix (it is the shared prefix itself), the group is optional: matched deeper if it can
    be, else ending here. `depth`: the groups this one is nested in."""
    terminal = len(strings[0]) == at
    rest = strings[1:] if terminal else strings
    if not rest:
        return ""
    runs = _runs_by_next_character(rest, at)
    inner = depth + 1 + _range_levels(len(runs))  # this group, then the range groups above each branch
    branches: list[tuple[str, str]] = []  # (next character, branch), in character order
    flat = inner > MAX_NESTING
    for group in runs:
        if flat:
            suffixes = sorted((string[at:] for string in group), key=lambda suffix: (-len(suffix), suffix))
            branches.append((group[0][at], "|".join(re.escape(suffix) for suffix in suffixes)))
        elif len(group) == 1:
            branches.append((group[0][at], re.escape(group[0][at:])))
        else:
            shared = os.path.commonprefix(group)
            branches.append((group[0][at], re.escape(shared[at:]) + _node(group, len(shared), inner)))
    body = _by_ranges(branches)
    if terminal:
        return f"(?:{body})?"
    return body if len(branches) == 1 and not (flat and len(rest) > 1) else f"(?:{body})"


def _range_levels(count: int) -> int:
    """How many levels of range groups `_by_ranges` puts above `count` branches."""
    levels = 0
    while count > MAX_FAN_OUT:
        count = -(-count // MAX_FAN_OUT)
        levels += 1
    return levels


def _by_ranges(branches: list[tuple[str, str]]) -> str:
    """The branches (each starting with its own character, in character order) as one alternation; more
    than MAX_FAN_OUT as up to MAX_FAN_OUT groups, each behind a look-ahead of its characters' range (~15 ns
    in `re`: an assertion, one range compare), recursively. `re` tries an alternation's branches in turn (a
    branch starting with a literal is rejected in ~2 ns), so an offset costs at most MAX_FAN_OUT tests a
    level instead of one per branch. The matches do not change: a branch whose character is not the text's
    fails either way."""
    if len(branches) <= MAX_FAN_OUT:
        return "|".join(branch for _, branch in branches)
    size = MAX_FAN_OUT  # a power of MAX_FAN_OUT: the innermost groups hold MAX_FAN_OUT branches
    while size * MAX_FAN_OUT < len(branches):
        size *= MAX_FAN_OUT
    groups = []
    for start in range(0, len(branches), size):
        chunk = branches[start : start + size]
        low, high = _class_character(chunk[0][0]), _class_character(chunk[-1][0])
        groups.append(f"(?=[{low}-{high}])(?:{_by_ranges(chunk)})")
    return "|".join(groups)


def _class_character(character: str) -> str:
    return f"\\U{ord(character):08x}"


def _class_of(characters: list[str]) -> str:
    """A character class holding the sorted `characters` (and, past U+FFFF, possibly more)."""
    ranges: list[list[int]] = []
    for code in map(ord, characters):
        if ranges and ranges[-1][1] + 1 == code:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    astral = [pair for pair in ranges if pair[0] > 0xFFFF]
    if len(astral) > MAX_FAN_OUT:
        ranges = [pair for pair in ranges if pair[0] <= 0xFFFF] + [[astral[0][0], astral[-1][1]]]
    return "".join(f"{_class_character(chr(low))}-{_class_character(chr(high))}" for low, high in ranges)
