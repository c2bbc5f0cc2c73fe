"""The batch of a large Encode, CountTokens, Decode, Truncate, Chunk or ChunkStream request — its inputs and the
strings its special-token policy lists — is counted from its wire bytes before protobuf parses it
(tokend.server.batch_items, native/batch_items.c): the counts must be protobuf's for every message protobuf
parses (odd records included: a field of another wire type, groups, overlong varints), and the refusal from the
counts the servicer's. End to end (a real server, millions of empty inputs refused without the parse):
tests/server/test_hostile_requests.py. Chat requests: test_chat_shape.py."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.server._batch_items import batch_items
from tokend.server.batch_items import BATCH_METHODS, batch_prechecks
from tokend.service import InvalidRequest, Limits, RequestLimitExceeded, TokenizerService
from tokend_api.v1 import tokenizer_pb2 as pb

from .test_decode_request import INT64, ODD, _field, _varint

# Records protobuf keeps as unknown fields, which the counter must skip as it does.
GROUP = st.recursive(
    st.builds(lambda n: (n, b""), st.integers(1, 1000)),
    lambda inner: st.builds(lambda n, parts: (n, b"".join(_varint(m << 3 | 3) + body + _varint(m << 3 | 4) for m, body in parts)),
                            st.integers(1, 1000), st.lists(inner, max_size=3)),
    max_leaves=8,
).map(lambda group: _varint(group[0] << 3 | 3) + group[1] + _varint(group[0] << 3 | 4))  # fmt: skip
ODD_BUT_PARSED = st.one_of(
    GROUP,
    st.builds(lambda n, v: _field(n, 0, v), st.integers(1, 2), INT64),  # a known field as a varint
    st.builds(lambda n, b: _field(n, 5, b), st.integers(1, 2), st.binary(min_size=4, max_size=4)),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(1, 2), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n: _varint(n << 3 | 0) + b"\xff" * 9 + b"\x7f", st.integers(1, 1000)),  # bits past the 64th
)
POLICY = st.builds(
    lambda allowed, disallowed: pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=3, tokens=allowed),
                                                      disallowed=pb.SpecialTokenSet(tokens=disallowed)).SerializeToString(),
    st.lists(st.text(max_size=2), max_size=3), st.lists(st.text(max_size=2), max_size=3))  # fmt: skip
RECORD = st.one_of(
    st.builds(lambda model: _field(1, 2, model.encode()), st.text(max_size=6)),
    st.builds(lambda text: _field(2, 2, pb.Input(text=text).SerializeToString()), st.text(max_size=3)),
    st.builds(lambda number, policy: _field(number, 2, policy), st.sampled_from([3, 5, 6]), POLICY),
    ODD_BUT_PARSED,
)
POLICY_FIELDS = {pb.EncodeRequest: 3, pb.CountTokensRequest: 3, pb.DecodeRequest: 0, pb.TruncateRequest: 5, pb.ChunkRequest: 6}


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(list(POLICY_FIELDS)), st.lists(st.one_of(RECORD, ODD), max_size=8).map(b"".join))
def test_a_batch_is_counted_as_protobuf_counts_its_inputs(message_type, data):
    items, allowed, disallowed, complete = batch_items(data, POLICY_FIELDS[message_type])
    try:
        message = message_type.FromString(data)
    except DecodeError:
        return
    assert complete and items == len(message.inputs)
    if message_type is not pb.DecodeRequest:
        policy = message.special_tokens
        assert (allowed, disallowed) == (len(policy.allowed.tokens), len(policy.disallowed.tokens))


@pytest.mark.parametrize("message_type", list(POLICY_FIELDS))
def test_field_number_zero_inside_a_group_is_skipped_as_protobuf_skips_it(message_type):
    """protobuf (upb) skips field number 0 inside an unknown group (outside one it refuses it); the counter
    stopped there (fuzz07): the inputs after it went uncounted."""
    group = _varint(9 << 3 | 3) + b"\x00\x01\x03\x04\x02\x01x" + _varint(9 << 3 | 4)
    inputs = _field(2, 2, pb.Input(text="a").SerializeToString())
    data = inputs + group + inputs * 2
    message = message_type.FromString(data)  # what this test rests on
    items, _, _, complete = batch_items(data, POLICY_FIELDS[message_type])
    assert complete and items == len(message.inputs) == 3


@pytest.mark.parametrize("method", ["Encode", "CountTokens", "Truncate", "Chunk", "ChunkStream"])
def test_listed_special_tokens_are_counted_from_the_wire_bytes(method):
    """4,900,000 empty listed strings (2 bytes each) were +200 MiB of parse before the list's length was refused."""
    service = TokenizerService(models=None, limits=Limits())
    message_type = pb.ChunkRequest if method == "ChunkStream" else getattr(pb, f"{method}Request")
    request = message_type(model="m", inputs=[pb.Input(text="x")])
    request.special_tokens.disallowed.tokens.extend([""] * 16_385)
    data = request.SerializeToString()
    with pytest.raises(InvalidRequest, match=r"special_tokens.disallowed.tokens: 16385 strings listed"):
        batch_prechecks(service)[method](data)
    half = message_type(model="m")  # the same set in two records of the policy: protobuf merges them
    half.special_tokens.allowed.tokens.extend([""] * 9000)
    with pytest.raises(InvalidRequest, match=r"special_tokens.allowed.tokens: 18000 strings listed"):
        batch_prechecks(service)[method](half.SerializeToString() * 2)
    request.special_tokens.disallowed.ClearField("tokens")
    request.special_tokens.disallowed.tokens.extend([""] * 16_384)
    batch_prechecks(service)[method](request.SerializeToString())


@pytest.mark.parametrize("method", [*BATCH_METHODS, "ChunkStream"])
def test_a_batch_precheck_refuses_what_the_servicer_refuses(method):
    service = TokenizerService(models=None, limits=Limits(max_batch_items=8))
    check = batch_prechecks(service)[method]
    check(b"\x0a\x01m" + b"\x12\x00")  # one input
    for data in (b"\x12\x00" * 9, b"\x13\x14" + b"\x12\x00" * 9 + b"\x10\x00", b"\x12\x00" * 9 + b"\x12\x09"):
        if method == "ChunkStream":
            with pytest.raises(InvalidRequest, match=r"exactly one input \(got 9\)"):
                check(data)
        else:
            with pytest.raises(RequestLimitExceeded, match="9 batch items, over the limit of 8 \\(max_batch_items\\)"):
                check(data)
