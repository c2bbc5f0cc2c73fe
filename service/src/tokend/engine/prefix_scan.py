"""`PrefixScan`: is any of a few short strings in a text? The cheap first test before looking for special or
added tokens, which every encode and count of a model with such tokens runs on its whole text.

>>> scan = PrefixScan(["<|", "</", "[INST"])
>>> scan.found_in("a < b, c [d]"), scan.found_in("x </y>")
(False, True)

How: strings in up to 8 groups of at most 32 (a group: the strings that share their first two characters),
the native core's `contains_any` (service/native/text_find.c: the text scanned 16 bytes a step, whatever its
kind, for every group's first two characters at once, each of its strings compared where they occur; strings over
64 characters through CPython's own search), one pass over the text for all of them. More: CPython's `str.find` of
one character is a memchr (~0.1 us on 8,000 characters), of two characters a general search (~7 us, ~1.2 G
characters/s; a regex alternation of three ~2.5 us). So each distinct first character is found with
`find`, and the strings are tried only where it occurs (`startswith`); text where a first character occurs
often (HTML, C++ templates) goes to one regex search after a few tries.
Not handled: which string is where (the callers search for the tokens themselves when one may be there).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from ._native import contains_any
from .literal_alternation import literal_alternation

__all__ = ["PrefixScan"]

# Groups of strings (the strings that share their first two characters) looked for by the native core in one
# pass, and strings a group may hold (each compared wherever the two characters occur); with more, the
# first characters in Python.
_NATIVE_GROUPS = 8
_NATIVE_GROUP_STRINGS = 32
# Distinct first characters looked for one at a time; with more, one regex search.
_MAX_FIRST_CHARACTERS = 4
# Occurrences of a first character tried one at a time before the regex search takes the whole text.
_MAX_TRIES = 8


class PrefixScan:
    """Immutable; thread-safe."""

    def __init__(self, strings: Iterable[str]) -> None:
        self.strings = tuple(sorted(set(strings)))
        self._always = "" in self.strings  # the empty string is in every text
        by_first: dict[str, list[str]] = {}
        for string in self.strings:
            if string:
                by_first.setdefault(string[0], []).append(string)
        self._by_first = tuple((first, tuple(strings)) for first, strings in sorted(by_first.items()))
        # The strings as a trie (literal_alternation: an offset costs a branch per character, not an attempt
        # per string: thousands of distinct prefixes stay cheap), in the stdlib's `re` (no `import regex` on
        # the way to a first encode; sre's literal search is also faster than `regex`'s here).
        self._regex = re.compile(literal_alternation(self.strings)) if self.strings else None
        self._by_character = len(self._by_first) <= _MAX_FIRST_CHARACTERS
        # native: the core's scan takes them (a string of one character is a group of its own). contains_any
        # groups a *run* of strings that share their first two characters: `self.strings` is sorted, so each
        # pair's strings are one run and these counts are its groups.
        pairs = Counter(string[:2] for string in self.strings if len(string) >= 2)
        singles = sum(len(string) < 2 for string in self.strings)
        self.native = (len(pairs) + singles <= _NATIVE_GROUPS
                       and max(pairs.values(), default=0) <= _NATIVE_GROUP_STRINGS)  # fmt: skip

    def found_in(self, text: str) -> bool:
        """True when one of the strings occurs in `text`."""
        if self._always:
            return True
        if self._regex is None:
            return False
        if self.native:
            return contains_any(text, self.strings)
        if not self._by_character:
            return self._regex.search(text) is not None
        for first, strings in self._by_first:
            position = text.find(first)
            tries = 0
            while position >= 0:
                if text.startswith(strings, position):
                    return True
                tries += 1
                if tries == _MAX_TRIES:
                    return self._regex.search(text) is not None
                position = text.find(first, position + 1)
        return False
