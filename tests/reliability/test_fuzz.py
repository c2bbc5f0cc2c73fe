"""Fuzzing the running server with hypothesis: no crash, no INTERNAL, round trips exact.

1. Through the client (``RemoteEncoding``) against tiktoken: arbitrary text (any code point,
   surrogates included, special-token look-alikes), arbitrary bytes and arbitrary id lists give
   tiktoken's ids / bytes, and decode(encode(text)) is the text.
2. Raw request bytes sent with a generic gRPC call (no serializer, the bytes go as they are) to every
   Tokenizer method: random bytes, and valid requests with bytes flipped, cut or appended. Whatever
   the bytes, the answer is OK or a precise client-error status — never INTERNAL or UNKNOWN — and
   the server keeps answering correctly afterwards.

Bounded: a fixed number of examples per property (about 20 s here in all), no deadline per example
(the machine is shared); failures shrink to a minimal example as usual.
"""

from __future__ import annotations

import grpc
import pytest
import tiktoken
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support.server import TokendServer

import tokend_client
from tokend_api.v1 import tokenizer_pb2 as pb

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RAW_FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much, HealthCheck.too_slow],
)
METHODS = ("Encode", "Decode", "CountTokens", "ListModels", "GetModel")
# What a malformed or hostile request may get. INTERNAL means a bug; UNKNOWN an unhandled exception.
CLIENT_ERRORS = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "OUT_OF_RANGE"}
SPECIAL_LOOKALIKES = ["<|endoftext|>", "<|fim_prefix|>", "<|endofprompt|>", "<|", "|>", "endoftext"]


@pytest.fixture(scope="module")
def server():
    started = TokendServer(workers=1, metrics=False).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def remote(server):
    with tokend_client.TokendClient(server.target, timeout=30) as client:
        yield {name: client.get_encoding(name) for name in ("cl100k_base", "o200k_base")}


@pytest.fixture(scope="module")
def oracle():
    return {name: tiktoken.get_encoding(name) for name in ("cl100k_base", "o200k_base")}


# Code points unassigned in Python's Unicode database (category Cn) are left out of the general
# properties: the `regex` module's newer Unicode tables and tiktoken's differ on some of them (see
# test_unassigned_code_point_splits_like_tiktoken, a known divergence). Surrogates stay in.
assigned = st.characters(exclude_categories=("Cn",))
texts = st.lists(
    st.one_of(
        st.text(alphabet=assigned, max_size=40),
        st.sampled_from(SPECIAL_LOOKALIKES),
        st.text(alphabet="ab1 \n\t'’:", max_size=30),
    ),
    max_size=6,
).map("".join)
models = st.sampled_from(["cl100k_base", "o200k_base"])


@FUZZ
@given(text=texts, model=models)
def test_fuzz_encode_decode_round_trip_matches_tiktoken(remote, oracle, text: str, model: str) -> None:
    ids = remote[model].encode(text, disallowed_special=())
    assert ids == oracle[model].encode(text, disallowed_special=())
    assert remote[model].count(text, disallowed_special=()) == len(ids)
    assert remote[model].decode_bytes(ids) == oracle[model].decode_bytes(ids)
    if not any(0xD800 <= ord(char) <= 0xDFFF for char in text):  # lone surrogates cannot round-trip (tiktoken neither)
        assert remote[model].decode(ids) == text


@FUZZ
@given(text=texts, model=models)
def test_fuzz_special_tokens_allowed_and_disallowed_match_tiktoken(remote, oracle, text: str, model: str) -> None:
    assert remote[model].encode(text, allowed_special="all") == oracle[model].encode(text, allowed_special="all")
    try:
        expected = oracle[model].encode(text)
    except ValueError:
        with pytest.raises(ValueError):  # tokend_client.DisallowedSpecialTokenError is a ValueError, like tiktoken's
            remote[model].encode(text)
    else:
        assert remote[model].encode(text) == expected


@FUZZ
@given(data=st.binary(max_size=64), model=models)
def test_fuzz_bytes_round_trip(remote, oracle, data: bytes, model: str) -> None:
    ids = remote[model].encode_bytes(data)
    assert ids == oracle[model]._encode_bytes(data)
    assert remote[model].decode_bytes(ids) == data


@FUZZ
@given(ids=st.lists(st.integers(min_value=0, max_value=100_255), max_size=20))
def test_fuzz_decode_of_any_ranks_matches_tiktoken(remote, oracle, ids: list[int]) -> None:
    assert remote["cl100k_base"].decode_bytes(ids) == oracle["cl100k_base"].decode_bytes(ids)
    assert remote["cl100k_base"].decode(ids) == oracle["cl100k_base"].decode(ids)


# Found by this fuzzing: the `regex` module had newer Unicode tables than tiktoken (fixed by pinning
# regex to its Unicode 16 releases, see service/pyproject.toml).
def test_unassigned_code_point_splits_like_tiktoken(remote, oracle) -> None:
    text = "\U0003d000:A"
    assert remote["cl100k_base"].encode(text) == oracle["cl100k_base"].encode(text)  # [172, 121, 222, 222, 25, 32]


# ---- raw request bytes --------------------------------------------------------------------------
def _valid_requests() -> list[bytes]:
    return [
        pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="hello world"), pb.Input(data=b"\xff")]).SerializeToString(),
        pb.CountTokensRequest(model="o200k_base", inputs=[pb.Input(text="<|endoftext|> x")]).SerializeToString(),
        pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[9906, 1917])], errors=2).SerializeToString(),
        pb.GetModelRequest(model="cl100k_base@1").SerializeToString(),
        b"",
    ]


@st.composite
def mutated_requests(draw) -> bytes:
    base = bytearray(draw(st.sampled_from(_valid_requests())))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        action = draw(st.sampled_from(["flip", "cut", "append", "insert"]))
        if action == "flip" and base:
            base[draw(st.integers(0, len(base) - 1))] = draw(st.integers(0, 255))
        elif action == "cut" and base:
            del base[draw(st.integers(0, len(base) - 1)) :]
        elif action == "append":
            base += draw(st.binary(min_size=1, max_size=16))
        else:
            at = draw(st.integers(0, len(base)))
            base[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(base)


@pytest.fixture(scope="module")
def raw_methods(server):
    channel = server.channel()
    return {method: channel.unary_unary(f"/tokend.v1.Tokenizer/{method}") for method in METHODS}


REQUEST_TYPES = {
    "Encode": pb.EncodeRequest,
    "Decode": pb.DecodeRequest,
    "CountTokens": pb.CountTokensRequest,
    "ListModels": pb.ListModelsRequest,
    "GetModel": pb.GetModelRequest,
}


def _parses(method: str, data: bytes) -> bool:
    try:
        REQUEST_TYPES[method].FromString(data)
    except Exception:  # google.protobuf.message.DecodeError (and its variants across runtimes)
        return False
    return True


def _raw_call(raw_methods, method: str, data: bytes) -> tuple[str, str]:
    try:
        raw_methods[method](data, timeout=30)
    except grpc.RpcError as error:
        return error.code().name, error.details()
    return "OK", ""


@RAW_FUZZ
@given(method=st.sampled_from(METHODS), data=st.one_of(st.binary(max_size=200), mutated_requests()))
def test_fuzz_raw_request_bytes_that_parse_never_get_internal(raw_methods, method: str, data: bytes) -> None:
    # Bytes that are a well-formed message (unknown fields, odd values, wrong types of content).
    assume(_parses(method, data))
    code, details = _raw_call(raw_methods, method, data)
    assert code in CLIENT_ERRORS, f"{method} with raw bytes {data!r}: {code} {details}"


@RAW_FUZZ
@given(method=st.sampled_from(METHODS), data=st.one_of(st.binary(max_size=200), mutated_requests()))
def test_fuzz_raw_request_bytes_that_do_not_parse_are_invalid_argument(raw_methods, method: str, data: bytes) -> None:
    assume(not _parses(method, data))
    code, details = _raw_call(raw_methods, method, data)
    assert code == "INVALID_ARGUMENT", f"{method} with raw bytes {data!r}: {code} {details}"


def test_server_still_answers_exactly_after_the_fuzzing(remote, oracle, server) -> None:
    text = "After the fuzzing: still exact. 😀 <|endoftext|>"
    assert remote["cl100k_base"].encode(text, allowed_special="all") == oracle["cl100k_base"].encode(text, allowed_special="all")
    assert server.health_status() == "SERVING"
    assert server.events("worker_died") == []
