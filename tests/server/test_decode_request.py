"""Decode's large requests are read natively (tokend.server.decode_request, native/decode_request.c) instead of
by protobuf: the values must be exactly what ``DecodeRequest.FromString`` gives for every message it reads,
bytes it leaves to protobuf must include every one protobuf refuses, and the GIL must be free while a big one
is read. The end-to-end checks (a real server's answer to a large Decode is tiktoken's text; bad bytes get the
same INVALID_ARGUMENT as a small request's) are here too.
"""

from __future__ import annotations


import grpc
import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokend.server._decode_request import read_decode_request as read_native
from tokend.server.decode_request import RAW_READ_BYTES, DecodeIds, read_decode_request
from tokend_api.v1 import tokenizer_pb2 as pb

from support.gil_ticks import ticks_during

from .conftest import rpc_error


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    tag = _varint(number << 3 | wire)
    if wire == 0:
        return tag + _varint(payload)  # type: ignore[arg-type]
    if wire == 2:
        return tag + _varint(len(payload)) + payload  # type: ignore[arg-type]
    return tag + payload  # type: ignore[operator]


INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # varints protobuf truncates to the field's width
IDS = st.lists(st.one_of(st.integers(0, 2**32 - 1), INT64, st.sampled_from([0, 127, 128, 2**32 - 1, 2**32])), max_size=8)
UNKNOWN = st.one_of(
    st.builds(lambda n, v: _field(n, 0, v), st.integers(5, 1000), INT64),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(5, 1000), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 2, b), st.integers(5, 1000), st.binary(max_size=6)),
    st.builds(lambda n, b: _field(n, 5, b), st.integers(5, 1000), st.binary(min_size=4, max_size=4)),
)
# One TokenIds message: its ids packed or one record each, split over several records, with unknown fields.
TOKEN_IDS_RECORD = st.one_of(
    st.builds(lambda ids: _field(1, 2, b"".join(map(_varint, ids))), IDS),
    st.builds(lambda value: _field(1, 0, value), INT64),
    UNKNOWN,
)
TOKEN_IDS = st.lists(TOKEN_IDS_RECORD, max_size=5).map(b"".join)
MODEL = st.one_of(st.text(max_size=12).map(lambda text: text.encode("utf-8")), st.binary(max_size=6))
# Well-formed records of a DecodeRequest: each may be repeated (last scalar wins, inputs accumulate).
RECORD = st.one_of(
    st.builds(lambda model: _field(1, 2, model), MODEL),
    st.builds(lambda ids: _field(2, 2, ids), TOKEN_IDS),
    st.builds(lambda value: _field(3, 0, value), INT64),
    st.builds(lambda value: _field(4, 0, value), INT64),
    UNKNOWN,
)
# Bytes protobuf may refuse, or that only it reads: groups, wrong wire types, truncation, garbage.
ODD = st.one_of(
    st.builds(lambda n: _varint(n << 3 | 3) + _varint(n << 3 | 4), st.integers(1, 1000)),  # an empty group
    st.builds(lambda n, v: _field(n, 0, v), st.integers(1, 2), INT64),  # model / inputs as a varint
    st.builds(lambda n, b: _field(n, 2, b), st.integers(3, 4), st.binary(max_size=4)),  # errors as bytes
    st.builds(lambda b: _field(2, 2, _field(1, 5, b)), st.binary(min_size=4, max_size=4)),  # ids as fixed32
    st.binary(min_size=1, max_size=6),
    st.just(b"\x00"),  # field number 0
    st.just(b"\xff" * 11),  # a varint of 11 bytes
)


def _values(message: pb.DecodeRequest) -> tuple:
    return message.model, [list(item.ids) for item in message.inputs], message.errors, message.output


def _native_values(read: tuple) -> tuple:
    model, buffer, counts, errors, output = read
    ids = memoryview(buffer).cast("I").tolist()
    inputs, start = [], 0
    for count in counts:
        inputs.append(ids[start : start + count])
        start += count
    return model, inputs, errors, output


def _protobuf(data: bytes) -> tuple | None:
    try:
        return _values(pb.DecodeRequest.FromString(data))
    except Exception:  # protobuf's DecodeError
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, max_size=8).map(b"".join))
def test_a_well_formed_message_reads_as_protobuf_reads_it(data: bytes) -> None:
    expected = _protobuf(data)
    read = read_native(data)
    if expected is None:  # a model that is not UTF-8: protobuf's error, so the reader must leave it
        assert read is None
    else:
        assert read is not None, "the reader left a well-formed message to protobuf"
        assert _native_values(read) == expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(RECORD, ODD), max_size=8).map(b"".join))
def test_any_bytes_read_as_protobuf_reads_them_or_are_left_to_it(data: bytes) -> None:
    expected = _protobuf(data)
    read = read_native(data)
    if read is not None:
        assert expected is not None, "the reader accepted bytes protobuf refuses"
        assert _native_values(read) == expected


@pytest.mark.parametrize("size", range(1, 11))
@pytest.mark.parametrize("place", ["tag", "length", "ids' tag", "ids' length", "unknown field's tag", "unknown field's length"])
def test_tags_and_lengths_of_more_than_five_bytes_are_left_to_protobuf(size: int, place: str) -> None:
    """protobuf (upb) refuses a tag or a length written in more than 5 bytes (a value varint may take 10); the
    reader took up to 10 (wire_reader.h, shared with text_request.c, where differential fuzzing found it)."""

    def padded(value: int) -> bytes:  # a varint of exactly `size` bytes
        return bytes((value >> (7 * i)) & 0x7F | (0x80 if i < size - 1 else 0) for i in range(size))

    ids = _field(1, 2, bytes([1, 2, 3]))
    records = {
        "tag": padded(2 << 3 | 2) + _varint(len(ids)) + ids,
        "length": b"\x12" + padded(len(ids)) + ids,
        "ids' tag": _field(2, 2, padded(1 << 3 | 2) + b"\x01\x07"),
        "ids' length": _field(2, 2, b"\x0a" + padded(1) + b"\x07"),
        "unknown field's tag": padded(9 << 3 | 0) + b"\x01" + _field(2, 2, ids),
        "unknown field's length": b"\x4a" + padded(1) + b"x" + _field(2, 2, ids),
    }
    data = _field(1, 2, b"m") + records[place] + _field(3, 0, 1)
    expected = _protobuf(data)
    assert (expected is None) == (size > 5)  # what this test rests on
    read = read_native(data)
    if size > 5:
        assert read is None, "the reader accepted bytes protobuf refuses"
    else:
        assert read is not None and _native_values(read) == expected


def test_every_field_of_the_request_is_read() -> None:
    """native/decode_request.c reads these fields and skips any other: a new field of DecodeRequest or
    TokenIds must be read there too (or the servicer would never see it), and added here."""
    fields = {
        message.DESCRIPTOR.full_name: sorted((f.number, f.name, f.type, f.is_repeated, f.has_presence)
                                             for f in message.DESCRIPTOR.fields)
        for message in (pb.DecodeRequest, pb.TokenIds)
    }  # fmt: skip
    field = pb.DecodeRequest.DESCRIPTOR.fields_by_name["model"]
    string, message, enum, uint32 = field.TYPE_STRING, field.TYPE_MESSAGE, field.TYPE_ENUM, field.TYPE_UINT32
    assert fields == {
        "tokend.v1.DecodeRequest": [(1, "model", string, False, False), (2, "inputs", message, True, False),
                                    (3, "errors", enum, False, False), (4, "output", enum, False, False)],
        "tokend.v1.TokenIds": [(1, "ids", uint32, True, False)],
    }  # fmt: skip


def _big_request(**fields) -> pb.DecodeRequest:
    return pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[15339, 1917] * 20_000), pb.TokenIds()], **fields)


def test_a_large_request_becomes_decode_ids_and_a_small_one_a_message() -> None:
    data = _big_request(errors=pb.DecodeRequest.ERRORS_STRICT, output=7).SerializeToString()
    assert len(data) >= RAW_READ_BYTES
    read = read_decode_request(data)
    assert isinstance(read, DecodeIds)
    assert (read.model, read.errors, read.output) == ("cl100k_base", pb.DecodeRequest.ERRORS_STRICT, 7)
    assert [ids.tolist() for ids in read.ids] == [[15339, 1917] * 20_000, []]
    assert all(ids.format == "I" and ids.readonly for ids in read.ids)
    small = pb.DecodeRequest(model="m", inputs=[pb.TokenIds(ids=[1])])
    assert read_decode_request(small.SerializeToString()) == small


def test_large_bytes_protobuf_refuses_raise_its_error() -> None:
    data = _big_request().SerializeToString() + b"\x0a\xff"  # a model field whose length runs past the end
    with pytest.raises(Exception) as raised:
        pb.DecodeRequest.FromString(data)
    with pytest.raises(type(raised.value)):
        read_decode_request(data)


def test_the_gil_is_free_while_a_big_request_is_read() -> None:
    data = pb.DecodeRequest(model="m", inputs=[pb.TokenIds(ids=range(1 << 20, 5 << 20))]).SerializeToString()
    # With the GIL held throughout, the ticker could not run at all between the start and the end.
    ticks, seconds = ticks_during(lambda: read_native(data))
    assert ticks >= 2, f"{seconds:.3f} s without a tick"


def test_a_large_decode_through_the_server_is_tiktokens(stub) -> None:
    oracle = tiktoken.get_encoding("cl100k_base")
    # 40,000 ids (the server's request limit here is 200,000 bytes, 4 per id), ~76 KB packed
    ids = oracle.encode(" ".join(f"word{i} {i * 7919 % 10007}" for i in range(12_000)))[:40_000]
    request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=ids), pb.TokenIds(ids=ids[:5])])
    assert request.ByteSize() >= RAW_READ_BYTES
    response = stub.Decode(request)
    assert [result.text for result in response.results] == [oracle.decode(ids), oracle.decode(ids[:5])]
    as_bytes = stub.Decode(pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=ids)],
                                            output=pb.DecodeRequest.OUTPUT_BYTES))  # fmt: skip
    assert as_bytes.results[0].data == oracle.decode_bytes(ids)


def test_a_large_request_that_does_not_parse_is_invalid_argument(shared_server) -> None:
    channel = grpc.insecure_channel(shared_server.target)
    decode = channel.unary_unary("/tokend.v1.Tokenizer/Decode", request_serializer=None,
                                 response_deserializer=pb.DecodeResponse.FromString)  # fmt: skip
    data = _big_request().SerializeToString() + b"\x0a\x02\xff\xfe"  # a model that is not UTF-8
    error = rpc_error(decode, data)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "do not parse as the Decode request message" in error.details()
    channel.close()
