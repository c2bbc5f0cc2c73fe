"""`CharSet`: a character class as the native matcher tests it, plus case folding per dialect.

A class is `negated XOR (code point in ranges OR property byte in signatures)`: `ranges` holds literal
characters and ranges (sorted, merged), `signatures` the 256-bit mask of property bytes that `\\p{..}`,
`\\s`, `\\w`, `\\d` and their negations contribute (see unicode_properties). That form is closed under
what the supported syntax builds: union of items inside `[...]`, then an optional `^`.

>>> digits = CharSet.of_ranges([(ord("0"), ord("9"))])
>>> digits.contains(ord("7"), properties=0), digits.negate().contains(ord("7"), properties=0)
(True, False)

Case folding (`(?i)`) is what the `regex` module does (simple case folding; the table is generated from
it); Oniguruma folds ASCII letters the same way (checked on every code point by the tests) but also folds
multi-character sequences, so the oniguruma dialect refuses what that would affect.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .. import _native

__all__ = ["CharSet", "case_variants", "multi_character_folds"]

MAX_CODE_POINT = 0x10FFFF


@dataclass(frozen=True)
class CharSet:
    ranges: tuple[tuple[int, int], ...] = ()  # inclusive (low, high), sorted, disjoint, not adjacent
    signatures: int = 0  # bit b: code points whose property byte is b
    negated: bool = False

    @classmethod
    def of_ranges(cls, ranges) -> CharSet:
        return cls(ranges=_normalize(ranges))

    @classmethod
    def of_char(cls, code_point: int) -> CharSet:
        return cls(ranges=((code_point, code_point),))

    def union(self, other: CharSet) -> CharSet:
        """Union of two sets that are not negated (items inside one `[...]`)."""
        if self.negated or other.negated:
            raise ValueError("union of negated sets is not representable")
        return CharSet(_normalize(self.ranges + other.ranges), self.signatures | other.signatures)

    def negate(self) -> CharSet:
        return CharSet(self.ranges, self.signatures, not self.negated)

    def contains(self, code_point: int, *, properties: int) -> bool:
        """Membership, given the code point's property byte (for analysis and tests)."""
        inside = any(low <= code_point <= high for low, high in self.ranges) or bool(self.signatures >> properties & 1)
        return inside != self.negated

    def superset_without_negation(self) -> CharSet:
        """A set without `negated` that contains this one (for first-character guards, which may overshoot)."""
        if not self.negated:
            return self
        return CharSet((), ~self.signatures & ((1 << 256) - 1))

    def single_code_point(self) -> int | None:
        if not self.negated and not self.signatures and len(self.ranges) == 1 and self.ranges[0][0] == self.ranges[0][1]:
            return self.ranges[0][0]
        return None


def _normalize(ranges) -> tuple[tuple[int, int], ...]:
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)


def case_variants(code_point: int) -> tuple[int, ...]:
    """Every code point that `(?i:c)` matches in the `regex` module (c itself included), sorted (a table
    generated from `regex` into unicode_props.h)."""
    return _native.case_variants(code_point)


@functools.lru_cache(maxsize=1)
def multi_character_folds() -> frozenset[str]:
    """The ASCII sequences that full case folding makes of one character ("ss", "st", "ff", "fi", ...)."""
    return frozenset(_native.ASCII_MULTI_CHARACTER_FOLDS.split(","))
