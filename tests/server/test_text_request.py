"""Encode's and CountTokens' large requests are read natively (tokend.server.text_request,
native/text_request.c) instead of by protobuf: the values must be exactly what ``FromString`` gives (the
texts and data the servicer reads, the merged special-token policy, the last model and flags) for every
message it reads, bytes it leaves to protobuf must include every one protobuf refuses, and the GIL must be
free while a big one is read. End to end: a real server's answers to large Encode and CountTokens requests
are tiktoken's; bad bytes get the same INVALID_ARGUMENT as a small request's.
"""

from __future__ import annotations


import time

import grpc
import pytest

import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokend.server._text_request import read_text_request as read_native
from tokend.server.decode_request import RAW_READ_BYTES, read_decode_request
from tokend.server.messages import inputs as message_inputs
from tokend.server.text_request import TextRequest, policy_from_records, read_count_request, read_encode_request
from tokend_api.v1 import tokenizer_pb2 as pb

from support.gil_ticks import ticks_during

from .conftest import rpc_error
from .test_decode_request import INT64, ODD, _field, _varint

MESSAGES = {5: pb.EncodeRequest, 3: pb.CountTokensRequest}
UNKNOWN = st.one_of(  # field numbers no message here has (a known one with another wire type is protobuf's to read)
    st.builds(lambda n, v: _field(n, 0, v), st.integers(6, 1000), INT64),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(6, 1000), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 2, b), st.integers(6, 1000), st.binary(max_size=6)),
    st.builds(lambda n, b: _field(n, 5, b), st.integers(6, 1000), st.binary(min_size=4, max_size=4)),
)
TEXT = st.one_of(st.text(max_size=10), st.text(alphabet="aé€😀\x00", max_size=10)).map(lambda text: text.encode("utf-8"))
UTF8ISH = st.one_of(TEXT, st.binary(max_size=6))  # sometimes not UTF-8: protobuf refuses, the reader must leave it
INPUT_RECORD = st.one_of(
    st.builds(lambda text: _field(1, 2, text), UTF8ISH),
    st.builds(lambda data: _field(2, 2, data), st.binary(max_size=8)),
    UNKNOWN,
)
INPUT = st.lists(INPUT_RECORD, max_size=4).map(b"".join)
TOKEN_SET = st.builds(
    lambda mode, tokens: (_field(1, 0, mode) if mode is not None else b"") + b"".join(_field(2, 2, t) for t in tokens),
    st.one_of(st.none(), st.integers(0, 5)), st.lists(UTF8ISH, max_size=3),
)
POLICY = st.builds(lambda allowed, disallowed: b"".join([*(_field(1, 2, a) for a in allowed), *(_field(2, 2, d) for d in disallowed)]),
                   st.lists(TOKEN_SET, max_size=2), st.lists(TOKEN_SET, max_size=2))  # fmt: skip
RECORD = st.one_of(
    st.builds(lambda model: _field(1, 2, model), UTF8ISH),
    st.builds(lambda item: _field(2, 2, item), INPUT),
    st.builds(lambda policy: _field(3, 2, policy), POLICY),
    st.builds(lambda number, value: _field(number, 0, value), st.integers(4, 5), st.one_of(st.integers(0, 2), INT64)),
    UNKNOWN,
)


def _values(message) -> tuple:
    flags = (message.offsets, message.token_bytes) if isinstance(message, pb.EncodeRequest) else (False, False)
    return (message.model, message_inputs(message.inputs), message.special_tokens.SerializeToString(deterministic=True),
            *flags)  # fmt: skip


def _native_values(read: tuple) -> tuple:
    model, inputs, policy, offsets, token_bytes = read
    return model, inputs, policy_from_records(policy).SerializeToString(deterministic=True), offsets, token_bytes


def _protobuf(data: bytes, last_field: int) -> tuple | None:
    try:
        return _values(MESSAGES[last_field].FromString(data))
    except Exception:  # protobuf's DecodeError
        return None


def _check(data: bytes, last_field: int, *, well_formed: bool) -> None:
    expected = _protobuf(data, last_field)
    read = read_native(data, last_field)
    if read is None:
        if well_formed:
            # Left to protobuf: only when it refuses, or when the policy's bytes (parsed by protobuf) are bad.
            assert expected is None
        return
    try:
        values = _native_values(read)
    except Exception:  # the policy's bytes do not parse: protobuf refuses the whole message too
        assert expected is None
        return
    assert expected is not None, "the reader accepted bytes protobuf refuses"
    assert values == expected
    assert all(type(a) is type(b) for a, b in zip(values[1], expected[1]))  # str stays str, bytes bytes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RECORD, max_size=6).map(b"".join), st.sampled_from([5, 3]))
def test_a_well_formed_message_reads_as_protobuf_reads_it(data: bytes, last_field: int) -> None:
    _check(data, last_field, well_formed=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(RECORD, ODD), max_size=6).map(b"".join), st.sampled_from([5, 3]))
def test_any_bytes_read_as_protobuf_reads_them_or_are_left_to_it(data: bytes, last_field: int) -> None:
    _check(data, last_field, well_formed=False)


def _padded(value: int, size: int) -> bytes:
    """``value`` as a varint of exactly ``size`` bytes (overlong: continuation bytes of zeros)."""
    out = bytearray()
    for index in range(size):
        out.append(value & 0x7F | (0x80 if index < size - 1 else 0))
        value >>= 7
    return bytes(out)


@pytest.mark.parametrize("size", range(1, 11))
@pytest.mark.parametrize(
    "place",
    ["tag", "length", "input's tag", "input's length", "unknown field's tag", "unknown field's length", "policy's length"],
)
def test_tags_and_lengths_of_more_than_five_bytes_are_left_to_protobuf(size: int, place: str) -> None:
    """protobuf (upb) refuses a tag or a length written in more than 5 bytes (a value varint may take 10): the
    reader took up to 10 and read such bytes as a request. Found by differential fuzzing (fuzz07):
    b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x00 \x02", an Input whose length 0 took 9 bytes."""
    text = _field(1, 2, "hé".encode())
    records = {
        "tag": _padded(2 << 3 | 2, size) + _varint(len(text)) + text,
        "length": b"\x12" + _padded(len(text), size) + text,
        "input's tag": _field(2, 2, _padded(1 << 3 | 2, size) + b"\x01a"),
        "input's length": _field(2, 2, b"\x0a" + _padded(1, size) + b"a"),
        "unknown field's tag": _padded(9 << 3 | 0, size) + b"\x01" + _field(2, 2, text),
        "unknown field's length": b"\x4a" + _padded(1, size) + b"x" + _field(2, 2, text),
        "policy's length": b"\x1a" + _padded(0, size) + _field(2, 2, text),
    }
    data = _field(1, 2, b"m") + records[place] + _field(4, 0, 1)
    for last_field in (5, 3):
        assert (_protobuf(data, last_field) is None) == (size > 5)  # what this test rests on
        _check(data, last_field, well_formed=False)
        if size <= 5:
            assert read_native(data, last_field) is not None


def test_every_field_of_the_requests_is_read() -> None:
    """native/text_request.c reads these fields and skips any other (the policy goes whole to protobuf): a
    new field of EncodeRequest, CountTokensRequest or Input must be read there too, and added here."""
    fields = {
        message.DESCRIPTOR.full_name: sorted((f.number, f.name, f.type, f.is_repeated) for f in message.DESCRIPTOR.fields)
        for message in (pb.EncodeRequest, pb.CountTokensRequest, pb.Input)
    }  # fmt: skip
    field = pb.Input.DESCRIPTOR.fields_by_name["text"]
    string, data, message, boolean = field.TYPE_STRING, field.TYPE_BYTES, field.TYPE_MESSAGE, field.TYPE_BOOL
    assert fields == {
        "tokend.v1.EncodeRequest": [(1, "model", string, False), (2, "inputs", message, True),
                                    (3, "special_tokens", message, False), (4, "offsets", boolean, False),
                                    (5, "token_bytes", boolean, False)],
        "tokend.v1.CountTokensRequest": [(1, "model", string, False), (2, "inputs", message, True),
                                         (3, "special_tokens", message, False)],
        "tokend.v1.Input": [(1, "text", string, False), (2, "data", data, False)],
    }  # fmt: skip
    assert [f.name for f in pb.Input.DESCRIPTOR.oneofs_by_name["content"].fields] == ["text", "data"]


def _policy() -> pb.SpecialTokenPolicy:
    return pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_LISTED, tokens=["<|endoftext|>"]))


def test_a_large_request_becomes_a_text_request_and_a_small_one_a_message() -> None:
    inputs = [pb.Input(text="héllo wörld 😀 " * 10_000), pb.Input(data=b"\xff\xfe" * 100), pb.Input()]
    for read, message in ((read_encode_request, pb.EncodeRequest), (read_count_request, pb.CountTokensRequest)):
        request = message(model="cl100k_base", inputs=inputs, special_tokens=_policy())
        assert request.ByteSize() >= RAW_READ_BYTES
        got = read(request.SerializeToString())
        assert isinstance(got, TextRequest)
        assert got == TextRequest("cl100k_base", ["héllo wörld 😀 " * 10_000, b"\xff\xfe" * 100, ""], _policy())
        small = message(model="m", inputs=[pb.Input(text="x")])
        assert read(small.SerializeToString()) == small
    with_offsets = pb.EncodeRequest(model="m", inputs=inputs, offsets=True)
    assert read_encode_request(with_offsets.SerializeToString()) == with_offsets  # its budget path reads the message


def test_large_bytes_protobuf_refuses_raise_its_error() -> None:
    data = pb.CountTokensRequest(model="m", inputs=[pb.Input(text="x" * RAW_READ_BYTES)]).SerializeToString()
    for bad in (data + b"\x0a\xff", data + b"\x12\x04\x0a\x02\xc3\x28"):  # truncated; an input that is not UTF-8
        with pytest.raises(Exception) as raised:
            pb.CountTokensRequest.FromString(bad)
        with pytest.raises(type(raised.value)):
            read_count_request(bad)


def test_the_gil_is_free_while_a_big_request_is_read() -> None:
    data = pb.EncodeRequest(model="m", inputs=[pb.Input(text="é" * (8 << 20))]).SerializeToString()
    # With the GIL held throughout, the ticker could not run at all between the start and the end.
    ticks, seconds = ticks_during(lambda: read_native(data, 5))
    assert ticks >= 2, f"{seconds:.3f} s without a tick"


def test_large_encodes_and_counts_through_the_server_are_tiktokens(stub) -> None:
    oracle = tiktoken.get_encoding("cl100k_base")
    text = " ".join(f"wörd{i} {i * 7919 % 10007} 😀" for i in range(5_000))  # ~90 KB (the server's limit: 200,000 bytes)
    request = dict(model="cl100k_base", inputs=[pb.Input(text=text), pb.Input(data=b"hello world " * 50), pb.Input(text="")])
    encoded = stub.Encode(pb.EncodeRequest(**request))
    assert [list(result.ids) for result in encoded.results] == [oracle.encode(text), oracle.encode("hello world " * 50), []]
    counted = stub.CountTokens(pb.CountTokensRequest(**request))
    assert list(counted.counts) == [len(ids.ids) for ids in encoded.results]
    special = text + "<|endoftext|>"
    error = rpc_error(stub.CountTokens, pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=special)]))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "<|endoftext|>" in error.details()
    allowed = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=special)], special_tokens=_policy()))
    assert list(allowed.results[0].ids) == oracle.encode(special, allowed_special={"<|endoftext|>"})


def test_a_large_request_is_logged_with_its_model_and_items(shared_server, stub) -> None:
    """A large message is parsed on the handler thread, inside the request log's interceptor: the log line
    still names the model the caller asked for and the number of items."""
    model = "no-such-model-for-the-log-test"
    error = rpc_error(stub.CountTokens, pb.CountTokensRequest(model=model, inputs=[pb.Input(text="x" * RAW_READ_BYTES)]))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    deadline = time.monotonic() + 10
    while not (lines := [e for e in shared_server.events("rpc_error") if e.get("model") == model]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lines and lines[-1]["items"] == 1 and lines[-1]["method"].endswith("/CountTokens")


def test_a_large_request_that_does_not_parse_is_invalid_argument(shared_server) -> None:
    channel = grpc.insecure_channel(shared_server.target)
    for method, response in (("Encode", pb.EncodeResponse), ("CountTokens", pb.CountTokensResponse)):
        call = channel.unary_unary(f"/tokend.v1.Tokenizer/{method}", request_serializer=None,
                                   response_deserializer=response.FromString)  # fmt: skip
        data = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="x" * RAW_READ_BYTES)]).SerializeToString()
        error = rpc_error(call, data + b"\x12\x04\x0a\x02\xc3\x28")  # an input whose text is not UTF-8
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"do not parse as the {method} request message" in error.details()
    channel.close()


def test_the_server_reads_large_requests_with_the_readers() -> None:
    from grpc_health.v1.health import HealthServicer

    from tokend.server import grpc_server
    from tokend.server.servicer import TokenizerServicer

    class Recorder:
        def __init__(self) -> None:
            self.handlers: dict = {}

        def add_generic_rpc_handlers(self, handlers) -> None:
            pass

        def add_registered_method_handlers(self, service, handlers) -> None:
            self.handlers[service] = handlers

    server = Recorder()
    grpc_server.add_services(server, tokenizer=TokenizerServicer(None), health=HealthServicer(),  # type: ignore[arg-type]
                             reflection_enabled=False)
    handlers = server.handlers["tokend.v1.Tokenizer"]
    assert handlers["Encode"].request_deserializer is read_encode_request
    assert handlers["CountTokens"].request_deserializer is read_count_request
    assert handlers["Decode"].request_deserializer is read_decode_request
