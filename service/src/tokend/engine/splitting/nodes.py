"""The AST of a split pattern (what syntax.parse builds and compiler.compile_program reads), and the
error for a construct outside the supported subset.

>>> Repeat(Chars(CharSet.of_char(ord("a"))), 1, None, "greedy").maximum is None
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .charset import CharSet

__all__ = [
    "Dialect",
    "DIALECTS",
    "UnsupportedPattern",
    "Chars",
    "Sequence",
    "Alternation",
    "Repeat",
    "Assertion",
    "Lookahead",
    "Atomic",
]

Dialect = Literal["python-regex", "oniguruma"]
DIALECTS = ("python-regex", "oniguruma")


class UnsupportedPattern(ValueError):
    """A construct outside the supported subset (or a pattern that does not parse); `.offset` into the pattern."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} (at offset {offset})")
        self.offset = offset


@dataclass(frozen=True)
class Chars:
    """One character from `charset`."""

    charset: CharSet

    def __repr__(self) -> str:
        return "Chars(...)"


@dataclass(frozen=True)
class Sequence:
    items: tuple


@dataclass(frozen=True)
class Alternation:
    branches: tuple  # leftmost-first


@dataclass(frozen=True)
class Repeat:
    item: object
    minimum: int
    maximum: int | None  # None = unbounded
    mode: Literal["greedy", "lazy", "possessive"]


@dataclass(frozen=True)
class Assertion:
    # text_start, text_end, text_end_or_final_newline, line_start, line_end, word_boundary, not_word_boundary
    kind: str


@dataclass(frozen=True)
class Lookahead:
    item: object
    negated: bool


@dataclass(frozen=True)
class Atomic:
    item: object
