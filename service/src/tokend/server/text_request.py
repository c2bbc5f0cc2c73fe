"""Encode's and CountTokens' request deserializers: a large request's texts are read from its wire bytes
without the GIL.

Why: ``FromString`` of an 8 MiB text request holds the GIL 2-5 ms (protobuf copies and checks the text) and
reading its ``text`` 1-3 ms more (UTF-8 into a str), while every other call of the worker waits. A request of
at least ``RAW_READ_BYTES`` is read by native/text_request.c instead: it checks the UTF-8 and fills each str
and bytes object with the GIL released, so the servicer gets a ``TextRequest`` whose ``inputs`` are already
the service's values (str for text, bytes for data). Its special-token policy is parsed by protobuf from the
policy's own records (``policy_from_records``: each alone, then merged, as protobuf reads them). Smaller requests, Encode with ``offsets`` or
``token_bytes`` (its budget path reads the message), and anything the reader leaves to protobuf (bytes that do
not parse, text that is not UTF-8, groups, a known field with another wire type) are parsed by ``FromString``
as before: the same values, and the same error for bytes that do not parse.

    request = read_encode_request(data)       # a TextRequest, or a pb.EncodeRequest
    inputs = request.inputs if isinstance(request, TextRequest) else messages.inputs(request.inputs)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.server._text_request import read_text_request as _read
from tokend.server.decode_request import RAW_READ_BYTES

__all__ = ["TextRequest", "read_encode_request", "read_count_request", "policy_from_records"]

_ENCODE_LAST_FIELD = 5  # token_bytes
_COUNT_LAST_FIELD = 3  # special_tokens


@dataclass(frozen=True)
class TextRequest:
    """An ``EncodeRequest``'s or ``CountTokensRequest``'s values (Encode: without offsets or token bytes)."""

    model: str
    inputs: list[str | bytes]
    special_tokens: pb.SpecialTokenPolicy


def read_encode_request(data: bytes) -> TextRequest | pb.EncodeRequest:
    return _text_request(data, pb.EncodeRequest, _ENCODE_LAST_FIELD)


def read_count_request(data: bytes) -> TextRequest | pb.CountTokensRequest:
    return _text_request(data, pb.CountTokensRequest, _COUNT_LAST_FIELD)


def _text_request(data: bytes, message: Any, last_field: int) -> Any:
    if len(data) < RAW_READ_BYTES:
        return message.FromString(data)
    read = _read(data, last_field)
    if read is None or read[3] or read[4]:  # protobuf decides; or offsets / token bytes: the message's path
        return message.FromString(data)
    model, inputs, policy, _, _ = read
    return TextRequest(model, inputs, policy_from_records(policy))


def policy_from_records(records: tuple[bytes, ...]) -> pb.SpecialTokenPolicy:
    """The ``special_tokens`` field from its records' payloads as protobuf reads a message field given more
    than once: each record parsed alone (one that does not parse fails, even where the records joined
    would parse) and merged into the one before; DecodeError as FromString raises it."""
    policy = pb.SpecialTokenPolicy()
    for record in records:
        policy.MergeFromString(record)
    return policy
