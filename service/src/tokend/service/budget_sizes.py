"""Sizes for the token-budget answers, and byte positions of character positions.

An answer with offsets carries four varints per token besides the id; chunks and truncations carry a span
each. Offsets are non-decreasing, so the exact varint size of a whole offsets array is a few binary
searches (:func:`sorted_varint_bytes`), never a pass over it. Token bytes are the input's own bytes, cut
at token boundaries: their size is the text's UTF-8 size plus a tag and a length per token.

    >>> from array import array
    >>> sorted_varint_bytes(array("I", [0, 5, 200, 70000]))     # 1 + 1 + 2 + 3
    7
    >>> positions = BytePositions("héllo")
    >>> positions(0), positions(2), positions(5), positions(1)
    (0, 3, 6, 1)
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

__all__ = ["BytePositions", "sorted_varint_bytes", "utf8_of", "offsets_bytes", "SPAN_FRAMING_BYTES"]

_VARINT_STEPS = (127, 16383, 2097151, 268435455)  # the largest values of 1, 2, 3 and 4 bytes
# One chunk or truncation besides its ids: its message tag and length, the ids' tag and length, four
# offsets with their tags (at most 5 + 1 bytes each), a total.
SPAN_FRAMING_BYTES = 48


def sorted_varint_bytes(values: Sequence[int]) -> int:
    """Bytes of non-decreasing ``values`` as varints, exactly."""
    size = len(values)
    for step in _VARINT_STEPS:
        size += len(values) - bisect_right(values, step)
    return size


def offsets_bytes(starts: Sequence[int], ends: Sequence[int], byte_starts: Sequence[int], byte_ends: Sequence[int]) -> int:
    """Bytes of one input's four offsets arrays as packed varints, with their tags and lengths."""
    return sum(sorted_varint_bytes(values) + 6 for values in (starts, ends, byte_starts, byte_ends))


def utf8_of(text: str) -> bytes:
    """The UTF-8 the engine tokenizes for ``text``: lone surrogates repaired as tiktoken repairs them."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")


class BytePositions:
    """Character position → byte position in the UTF-8 of one text; each call costs the distance from the
    previous position, forward or back, so a text's chunks (every start a little before the previous end,
    with overlap) and truncations take about one pass over the text in all."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._ascii = text.isascii()
        self._character = 0
        self._byte = 0

    def __call__(self, position: int) -> int:
        if self._ascii:
            return position
        # Step from the previous position, not from the start: restarting at 0 for a position behind it made
        # overlapping chunks quadratic (200k characters of CJK in 16-token chunks: ~80 s of str.encode).
        if position < self._character:
            self._byte -= len(utf8_of(self._text[position : self._character]))
        else:
            self._byte += len(utf8_of(self._text[self._character : position]))
        self._character = position
        return self._byte
