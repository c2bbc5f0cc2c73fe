"""Is a peer exact? Its ids (and counts) compared with the reference's on every text, before any timing.

    verdict = check_exact(peer.encode, peer.count, reference.encode_ordinary, texts)
    verdict.exact, verdict.summary()          # True, "exact on 412 texts"; verdict.short() for a table cell

A peer that differs on any text of a cell is reported with the count of differing texts and the first
one, and is not timed in that cell: a fast wrong answer is not a data point. An exception counts as a
difference (the peer cannot do that text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Exactness", "check_exact"]


@dataclass(frozen=True)
class Exactness:
    texts: int
    encode_mismatches: int
    count_mismatches: int
    first_mismatch: str | None = None  # a short description of the first difference

    @property
    def exact(self) -> bool:
        return self.encode_mismatches == 0 and self.count_mismatches == 0

    def short(self) -> str:
        """For a table cell: "exact" or "NOT exact (3/51 texts)"."""
        if self.exact:
            return "exact"
        return f"NOT exact ({max(self.encode_mismatches, self.count_mismatches)}/{self.texts} texts)"

    def summary(self) -> str:
        if self.exact:
            return f"exact on {self.texts} texts"
        return (f"NOT exact: encode differs on {self.encode_mismatches}/{self.texts} texts, count on "
                f"{self.count_mismatches}/{self.texts}; first: {self.first_mismatch}")


def check_exact(
    encode: Callable[[str], Sequence[int]],
    count: Callable[[str], int] | None,
    reference: Callable[[str], Sequence[int]],
    texts: Sequence[str],
) -> Exactness:
    encode_mismatches = count_mismatches = 0
    first: str | None = None
    for index, text in enumerate(texts):
        expected = list(reference(text))
        try:
            ids = list(encode(text))
        except Exception as error:  # noqa: BLE001 - any failure is a mismatch, reported with its type
            ids = f"{type(error).__name__}: {error}"
        if ids != expected:
            encode_mismatches += 1
            first = first or _describe(index, text, expected, ids)
        if count is None:
            continue
        try:
            counted = count(text)
        except Exception as error:  # noqa: BLE001
            counted = f"{type(error).__name__}: {error}"
        if counted != len(expected):
            count_mismatches += 1
            first = first or f"text {index} ({text[:40]!r}…): count {counted!r}, reference {len(expected)}"
    return Exactness(len(texts), encode_mismatches, count_mismatches, first)


def _describe(index: int, text: str, expected: list[int], got) -> str:
    if isinstance(got, str):
        return f"text {index} ({text[:40]!r}…) raised {got[:120]}"
    at = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), min(len(expected), len(got)))
    return (f"text {index} ({text[:40]!r}…): first differing id at position {at}: "
            f"{got[at:at + 4]} vs reference {expected[at:at + 4]}")
