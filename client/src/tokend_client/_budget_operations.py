"""The token-budget RPCs as data (Encode with offsets, Truncate, Chunk; the ChunkStream request), their
arguments checked as the engine checks them, and answers turned into the engine's result types.

Arguments: the engine raises `TypeError` for a wrong type and `InvalidBudgetError` (naming the argument)
for a value out of range; the wire cannot even carry some of those values (a negative uint32), so they are
checked here, with the engine's words, before anything is sent. Errors that depend on the text (a budget no
cut can meet, a disallowed special token) come from the server.

Positions: the server counts characters of the text it received. Text with lone surrogates is repaired
before sending (`_operations.utf8_text`: a surrogate pair becomes one character), so its positions are
mapped back to the caller's string (`CharacterMap`) — the engine's offsets also index the caller's string.

    operation = truncate_operation(ref, policy, 100, "right", expect)
    truncations = operation.results(stub.Truncate(operation.request(inputs)), expected_items=len(inputs))
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

from tokend_api.v1 import tokenizer_pb2 as pb

from ._budget_results import Chunk, TokenOffsets, Truncation
from ._exceptions import InvalidBudgetError
from ._operations import Operation, utf8_text

__all__ = [
    "CharacterMap",
    "PreparedTexts",
    "chunk_operation",
    "chunk_request",
    "check_chunk_arguments",
    "check_truncate_arguments",
    "offsets_operation",
    "read_chunks",
    "truncate_operation",
]

_UINT32_MAX = 2**32 - 1
_SIDES = {"right": pb.TruncateRequest.SIDE_RIGHT, "left": pb.TruncateRequest.SIDE_LEFT}
_PREFER = {
    "paragraph": pb.ChunkRequest.PREFER_PARAGRAPH,
    "sentence": pb.ChunkRequest.PREFER_SENTENCE,
    "whitespace": pb.ChunkRequest.PREFER_WHITESPACE,
    "token": pb.ChunkRequest.PREFER_TOKEN,
}


class CharacterMap:
    """Positions in the repaired text sent to the server → positions in the caller's string (identity
    unless a surrogate pair was joined into one character)."""

    def __init__(self, original: str, sent: str) -> None:
        self.original = original
        self._positions: array | None = None
        if sent is not original and len(sent) != len(original):
            positions = array("I")
            index = 0
            while index < len(original):
                positions.append(index)
                pair = "\ud800" <= original[index] <= "\udbff" and index + 1 < len(original) and "\udc00" <= original[index + 1] <= "\udfff"
                index += 2 if pair else 1
            positions.append(len(original))
            self._positions = positions

    def __call__(self, position: int) -> int:
        return position if self._positions is None else self._positions[position]

    def many(self, positions: Sequence[int]) -> array:
        values = array("I", positions)
        if self._positions is not None:
            values = array("I", map(self._positions.__getitem__, values))
        return values


class PreparedTexts:
    """A batch of texts ready to send: input messages, sizes, and each text's character map."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.inputs: list[pb.Input] = []
        self.sizes: list[int] = []
        self.maps: list[CharacterMap] = []
        for text in texts:
            sent, size = utf8_text(text)
            self.inputs.append(pb.Input(text=sent))
            self.sizes.append(size)
            self.maps.append(CharacterMap(text, sent))

    def prepared(self) -> tuple[list[pb.Input], list[int]]:
        return self.inputs, self.sizes


def check_truncate_arguments(max_tokens: object, side: object) -> None:
    _check_max_tokens(max_tokens, minimum=0)
    if side not in _SIDES:
        raise InvalidBudgetError("side", f"side must be 'right' (keep the beginning) or 'left' (keep the end), got {side!r}")


def check_chunk_arguments(max_tokens: object, overlap: object, prefer: object, max_chunks: object) -> None:
    _check_max_tokens(max_tokens, minimum=1)
    if max_chunks is not None and (isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1):
        raise TypeError(f"max_chunks must be None or an int >= 1, got {max_chunks!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise TypeError(f"overlap must be an int, got {type(overlap).__name__}")
    if not 0 <= overlap < max_tokens:  # type: ignore[operator]
        raise InvalidBudgetError("overlap", f"overlap must be >= 0 and below max_tokens ({max_tokens}), got {overlap}")
    if prefer not in _PREFER:
        raise InvalidBudgetError("prefer", f"prefer must be one of {', '.join(map(repr, _PREFER))}, got {prefer!r}")


def _check_max_tokens(max_tokens: object, *, minimum: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, got {type(max_tokens).__name__}")
    if max_tokens < minimum:
        raise InvalidBudgetError("max_tokens", f"max_tokens must be >= {minimum}, got {max_tokens}")


def offsets_operation(ref: str, policy: pb.SpecialTokenPolicy, expect: tuple[str, int] | None) -> Operation:
    """Encode with offsets: each result is `(ids, TokenOffsets message)`."""
    return Operation(
        "Encode",
        lambda inputs: pb.EncodeRequest(model=ref, inputs=inputs, special_tokens=policy, offsets=True),
        lambda response: list(zip((list(result.ids) for result in response.results), response.offsets))
        if len(response.offsets) == len(response.results) else [],
        expect,
    )


def token_offsets(ids: list[int], message: Any, characters: CharacterMap) -> TokenOffsets:
    return TokenOffsets(
        ids, characters.many(message.starts), characters.many(message.ends),
        array("I", message.byte_starts), array("I", message.byte_ends),
    )  # fmt: skip


def truncate_operation(
    ref: str, policy: pb.SpecialTokenPolicy, max_tokens: int, side: str, expect: tuple[str, int] | None
) -> Operation:
    """Truncate: each result is the `Truncation` message (the caller's text gives its `text`)."""
    return Operation(
        "Truncate",
        lambda inputs: pb.TruncateRequest(
            model=ref, inputs=inputs, max_tokens=min(max_tokens, _UINT32_MAX), side=_SIDES[side], special_tokens=policy
        ),
        lambda response: list(response.results),
        expect,
    )


def truncation(message: Any, characters: CharacterMap) -> Truncation:
    start, end = characters(message.start), characters(message.end)
    return Truncation(characters.original[start:end], list(message.ids), start, end, message.total_tokens)


def chunk_request(
    ref: str, policy: pb.SpecialTokenPolicy, inputs: Sequence[pb.Input], max_tokens: int, overlap: int, prefer: str,
    max_chunks: int | None,
) -> pb.ChunkRequest:  # fmt: skip
    request = pb.ChunkRequest(
        model=ref, inputs=inputs, max_tokens=min(max_tokens, _UINT32_MAX), overlap=overlap, prefer=_PREFER[prefer],
        special_tokens=policy,
    )  # fmt: skip
    if max_chunks is not None:
        request.max_chunks = min(max_chunks, _UINT32_MAX)
    return request


def chunk_operation(
    ref: str, policy: pb.SpecialTokenPolicy, max_tokens: int, overlap: int, prefer: str, max_chunks: int | None,
    expect: tuple[str, int] | None,
) -> Operation:  # fmt: skip
    """Chunk: each result is the input's list of `TextChunk` messages."""
    return Operation(
        "Chunk",
        lambda inputs: chunk_request(ref, policy, inputs, max_tokens, overlap, prefer, max_chunks),
        lambda response: [list(result.chunks) for result in response.results],
        expect,
    )


def read_chunks(messages: Sequence[Any], characters: CharacterMap) -> list[Chunk]:
    chunks = []
    for message in messages:
        start, end = characters(message.start), characters(message.end)
        chunks.append(Chunk(characters.original[start:end], start, end, list(message.ids)))
    return chunks
