"""The results of the token-budget methods, with the fields, properties and behaviour of the `tokend`
engine's own (`tokend.engine.offsets.TokenOffsets`, `truncation.Truncation`, `chunking.Chunk`), so code
written against the in-process engine reads a `RemoteEncoding`'s results unchanged.

    offsets = enc.encode_with_offsets("hi 🤖")
    offsets.spans()               # [(0, 2), (2, 4), (3, 4), (3, 4)]: characters of the text per token
    enc.truncate(text, 8).text    # the kept text; .ids its own encoding; .truncated
    [chunk.text for chunk in enc.chunk(text, 512)]

Spans are in characters (code points) of the caller's string and bytes of its UTF-8.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

__all__ = ["TokenOffsets", "Truncation", "Chunk"]


@dataclass(frozen=True, eq=False)
class TokenOffsets:
    """The ids of a text and, per token, the characters and bytes it covers (parallel `array('I')`s)."""

    ids: list[int]
    starts: array = field(repr=False)
    ends: array = field(repr=False)
    byte_starts: array = field(repr=False)
    byte_ends: array = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def spans(self) -> list[tuple[int, int]]:
        """`(start, end)` character span of each token: `text[start:end]` contains the token's bytes."""
        return list(zip(self.starts, self.ends))

    def byte_spans(self) -> list[tuple[int, int]]:
        """`(start, end)` byte span of each token in the UTF-8 of the text."""
        return list(zip(self.byte_starts, self.byte_ends))


@dataclass(frozen=True)
class Truncation:
    """The kept text, its own ids, its span `[start, end)` in the input and the input's token count."""

    text: str
    ids: list[int]
    start: int
    end: int
    total_tokens: int

    @property
    def truncated(self) -> bool:
        """True when something was cut off (the kept text fits, the whole did not)."""
        return len(self.ids) < self.total_tokens


@dataclass(frozen=True)
class Chunk:
    """One chunk: its text, its span `[start, end)` in the input (characters) and its own ids."""

    text: str
    start: int
    end: int
    ids: list[int]

    @property
    def token_count(self) -> int:
        return len(self.ids)
