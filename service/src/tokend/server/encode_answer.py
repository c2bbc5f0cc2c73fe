"""Encode's answer as the servicer returns it, and the response serializer that writes its wire bytes.

Why not a ``pb.EncodeResponse``: filling its repeated ``ids`` fields and ``SerializeToString`` are single
C calls that hold the GIL for tens of milliseconds on an answer of millions of ids (measured: ~40 ms to
build and ~60 ms to serialize 3.5 M ids), and every other call of the worker waits meanwhile. An
``EncodeAnswer`` keeps each input's ids as the engine gave them (a uint32 buffer for a big text, a list
for a batch of small ones) and ``serialize_encode_response`` writes the same bytes protobuf would
(native/encode_answer.c, the GIL released while it measures and writes). Clients see the same message.

    answer = EncodeAnswer(encoded.model, encoded.ids, encoded.total_tokens)
    serialize_encode_response(answer) == pb.EncodeResponse(...same fields...).SerializeToString()
    serialize_encode_response(pb.EncodeResponse(...))   # a message (Encode with offsets): protobuf's bytes
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokend.server._encode_answer import encode_response
from tokend.service.bulk_lane import BulkLane
from tokend.service.results import ModelVersion

__all__ = ["EncodeAnswer", "serialize_encode_response"]


@dataclass(frozen=True)
class EncodeAnswer:
    model: ModelVersion
    ids: Sequence[Sequence[int]]  # per input: a native uint32 buffer (memoryview "I") or a list of ints
    total_tokens: int


def serialize_encode_response(response: Any, lane: BulkLane | None = None) -> bytes:
    """The wire bytes of Encode's answer: an ``EncodeAnswer`` (written natively; a large one on ``lane``, the
    worker's low-priority bulk threads) or a ``pb.EncodeResponse``."""
    if isinstance(response, EncodeAnswer):
        model, ids = response.model, list(response.ids)

        def write() -> bytes:
            return encode_response(model.name.encode("utf-8"), model.version, response.total_tokens, ids)

        if lane is None:
            return write()
        return lane.run(write, call=None, size=4 * response.total_tokens)  # the ids' bytes held as uint32
    return response.SerializeToString()
