"""Chunk's answer as the servicer returns it, and the response serializer that writes its wire bytes a group of
chunks at a time.

Why not a ``pb.ChunkResponse``: its ``SerializeToString`` is one C call that holds the GIL, 13-23 ms for
100,000 one-token chunks on a loaded machine (docs/decisions.md, "Calls with many chunks"), and every other
call of the worker waits it out; a switch interval does not interrupt it. A ``ChunkAnswer`` keeps the
service's chunks, and ``serialize_chunk_response`` writes each input's ``Chunks`` as the serializations of
``CHUNKS_AT_ONCE`` chunks at a time (a repeated field's bytes are its elements' bytes one after another), so no
single hold is long, then frees the chunks a slice at a time. The bytes are protobuf's own; clients see the same
message.

    answer = ChunkAnswer(chunked.model, chunked.results)
    serialize_chunk_response(answer) == pb.ChunkResponse(...same fields...).SerializeToString()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.server.messages import model_version
from tokend.service.results import ModelVersion

__all__ = ["ChunkAnswer", "serialize_chunk_response", "add_chunks", "CHUNKS_AT_ONCE"]

# Chunks built into a message and serialized, or freed, per hold of the GIL: ~0.2-0.5 ms of one-token chunks
# (~2.5 ms at most seen on a loaded machine); between two groups other threads get their turn.
CHUNKS_AT_ONCE = 1024
_RESULTS_TAG = b"\x12"  # ChunkResponse.results: field 2, length-delimited


@dataclass(frozen=True)
class ChunkAnswer:
    model: ModelVersion
    results: list[list[Any]]  # per input, its chunks (TextChunk: ids, start, end, byte_start, byte_end)


def serialize_chunk_response(response: Any) -> bytes:
    """The wire bytes of Chunk's answer: a ``ChunkAnswer`` (a group of chunks at a time, then its chunks freed)
    or a ``pb.ChunkResponse``."""
    if not isinstance(response, ChunkAnswer):
        return response.SerializeToString()
    parts = [pb.ChunkResponse(model=model_version(response.model)).SerializeToString()]
    for chunks in response.results:
        groups = []
        for first in range(0, len(chunks), CHUNKS_AT_ONCE):
            group = pb.Chunks()
            add_chunks(group.chunks, chunks[first : first + CHUNKS_AT_ONCE])
            groups.append(group.SerializeToString())
        body = b"".join(groups)
        parts += (_RESULTS_TAG, _varint(len(body)), body)
        let_go(chunks)
    return b"".join(parts)


def add_chunks(messages: Any, chunks: Iterable[Any]) -> None:
    """Append ``TextChunk`` messages for ``chunks`` to a repeated field."""
    for chunk in chunks:
        message = messages.add(start=chunk.start, end=chunk.end, byte_start=chunk.byte_start, byte_end=chunk.byte_end)
        message.ids.extend(chunk.ids)


def let_go(chunks: list[Any]) -> None:
    """Free a list of chunks a slice at a time: 100,000 freed at once were one 15-30 ms hold of the GIL (loaded)."""
    while chunks:
        del chunks[-CHUNKS_AT_ONCE:]


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
