"""What the token-budget operations return: plain values naming the exact model version that answered.

Spans are in characters (code points) of the caller's string and in bytes of its UTF-8; a result's ``text``
is the caller's string sliced (front-ends that send the span need not send it).

    Truncated(model=ModelVersion("cl100k_base", 1), results=[TruncatedText("hello", [15339], 0, 5, 0, 5, 2)])
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from tokend.service.results import ModelVersion

__all__ = ["TokenSpans", "EncodedWithOffsets", "TruncatedText", "Truncated", "TextChunk", "Chunked"]


@dataclass(frozen=True, eq=False)
class TokenSpans:
    """Per token of one input (parallel to its ids): character and byte spans (``array('I')``, None unless
    asked for) and the bytes of the input each token spells (None unless asked for)."""

    starts: array | None
    ends: array | None
    byte_starts: array | None
    byte_ends: array | None
    token_bytes: list[bytes] | None


@dataclass(frozen=True)
class EncodedWithOffsets:
    model: ModelVersion
    ids: list[list[int]]  # one list per input, in order
    spans: list[TokenSpans]  # one per input, in order
    total_tokens: int


@dataclass(frozen=True)
class TruncatedText:
    """The kept part of one input, ``text[start:end]``, and its own encoding."""

    text: str
    ids: list[int]
    start: int
    end: int
    byte_start: int
    byte_end: int
    total_tokens: int  # tokens of the whole input


@dataclass(frozen=True)
class Truncated:
    model: ModelVersion
    results: list[TruncatedText]  # one per input, in order


@dataclass(frozen=True)
class TextChunk:
    """One chunk of one input, ``text[start:end]``, and its own encoding.

    It holds the whole input (``source``, shared by the input's chunks) and slices ``text`` from it when
    asked: an overlap repeats a chunk's text in the next ones, and gRPC's answer carries spans only (tokens
    of 128 spaces in chunks of 2,300 overlapping by 2,299 were 677 MB of texts held for 589 KB of input)."""

    source: str = field(repr=False, compare=False)  # the whole input
    ids: list[int]
    start: int
    end: int
    byte_start: int
    byte_end: int

    @property
    def text(self) -> str:
        return self.source[self.start : self.end]

    @classmethod
    def _made(cls, source: str, ids: list[int], start: int, end: int, byte_start: int, byte_end: int) -> TextChunk:
        # The chunking loop's constructor: a frozen dataclass's __init__ sets each field through
        # object.__setattr__ (~2.4 us for six under load, ~0.8 us this way), paid per chunk by a call of
        # 100,000 one-token chunks. Same object (fields, equality, immutability).
        chunk = _new_object(cls)
        fields = chunk.__dict__
        fields["source"], fields["ids"], fields["start"], fields["end"] = source, ids, start, end
        fields["byte_start"], fields["byte_end"] = byte_start, byte_end
        return chunk


_new_object = object.__new__


@dataclass(frozen=True)
class Chunked:
    model: ModelVersion
    results: list[list[TextChunk]]  # the chunks of each input, in order
