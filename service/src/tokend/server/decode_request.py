"""Decode's request deserializer: a large request's ids are read from its wire bytes without the GIL.

Why: ``DecodeRequest.FromString`` of 2,097,152 packed ids (6.3 MB, the decode-amplification request of
docs/api.md's hostile-input table) is one C call that holds the GIL for 7-13 ms while every other call of
the worker waits. A request of at least ``RAW_READ_BYTES`` is read by native/decode_request.c instead: it
walks the message with the GIL released and writes every input's ids into one buffer of native uint32, so
the servicer gets a ``DecodeIds`` whose inputs are ``memoryview``\\ s (the service's decode takes any
sequence of ints) and no Python int exists per id. Smaller requests, and anything the reader leaves to
protobuf (bytes that do not parse, a model that is not UTF-8, groups, a known field with another wire type),
are parsed by ``FromString`` as before: the same values, and the same error for bytes that do not parse.

    request = read_decode_request(data)    # a DecodeIds, or a pb.DecodeRequest
    ids = request.ids if isinstance(request, DecodeIds) else [item.ids for item in request.inputs]
"""

from __future__ import annotations

from dataclasses import dataclass

from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.server._decode_request import read_decode_request as _read

__all__ = ["DecodeIds", "read_decode_request", "RAW_READ_BYTES"]

# Below this, FromString holds the GIL well under a millisecond and the reader would only add a call.
RAW_READ_BYTES = 64 << 10


@dataclass(frozen=True)
class DecodeIds:
    """A ``pb.DecodeRequest``'s values: ``ids[i]`` is input i's ids (a read-only uint32 ``memoryview``)."""

    model: str
    ids: list[memoryview]
    errors: int
    output: int


def read_decode_request(data: bytes) -> DecodeIds | pb.DecodeRequest:
    if len(data) < RAW_READ_BYTES:
        return pb.DecodeRequest.FromString(data)
    read = _read(data)
    if read is None:
        return pb.DecodeRequest.FromString(data)  # protobuf decides (raises DecodeError for bad bytes)
    model, buffer, counts, errors, output = read
    ids = memoryview(buffer).cast("I")
    inputs, start = [], 0
    for count in counts:
        inputs.append(ids[start : start + count])
        start += count
    return DecodeIds(model, inputs, errors, output)
