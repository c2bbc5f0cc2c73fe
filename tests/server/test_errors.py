"""Every error path of the API: the status code, the message and the google.rpc details.

The shared server runs with small limits (tests/server/conftest.py: 64 items, 200000 input bytes,
1 MiB messages). After all of them the same worker still answers: bad input never crashes a worker.
"""

from __future__ import annotations

import random
import string

import grpc
import pytest

from tokend_api.v1 import tokenizer_pb2 as pb

from .conftest import rpc_error
from .status_details import details_of

Mode = pb.SpecialTokenSet.Mode
EOT = "<|endoftext|>"
LONE_BYTE_TOKEN = 158  # cl100k_base: the single byte 0xE2 (tiktoken encode_single_token(b"\xe2"))


def _texts(*strings: str) -> list[pb.Input]:
    return [pb.Input(text=s) for s in strings]


@pytest.fixture(scope="module")
def first_worker(stub):
    _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10)
    return dict(call.initial_metadata())["tokend-worker"]


def test_disallowed_special_token_names_item_token_and_character_offset(stub, first_worker):
    # "héllo " is 6 characters (7 UTF-8 bytes): the offset must count characters, as tiktoken's users expect.
    request = pb.EncodeRequest(model="cl100k_base", inputs=_texts("fine", "héllo <|endoftext|>"))
    error = rpc_error(stub.Encode, request, timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = details_of(error)
    assert list(details.violations) == ["inputs[1]"]
    assert "'<|endoftext|>'" in details.violations["inputs[1]"]
    assert "character offset 6" in details.violations["inputs[1]"]
    assert details.error_info["DISALLOWED_SPECIAL_TOKEN_ERROR"] == {"token": EOT, "offset": "6", "item": "1"}
    assert error.details().startswith("inputs[1]: ")


def test_disallowed_listed_token_in_count(stub):
    policy = pb.SpecialTokenPolicy(disallowed=pb.SpecialTokenSet(mode=Mode.MODE_LISTED, tokens=["<|fim_prefix|>"]))
    request = pb.CountTokensRequest(
        model="cl100k_base", inputs=_texts(f"{EOT} is ordinary here", "x<|fim_prefix|>"), special_tokens=policy
    )
    error = rpc_error(stub.CountTokens, request, timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details_of(error).error_info["DISALLOWED_SPECIAL_TOKEN_ERROR"] == {
        "token": "<|fim_prefix|>",
        "offset": "1",
        "item": "1",
    }


@pytest.mark.parametrize("bad_id", [100261, 100277, 4_000_000_000])  # unused id, n_vocab, far out
def test_unknown_token_id_names_item_and_id(stub, bad_id):
    request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[15339]), pb.TokenIds(ids=[15339, bad_id])])
    error = rpc_error(stub.Decode, request, timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = details_of(error)
    assert list(details.violations) == ["inputs[1]"]
    assert str(bad_id) in details.violations["inputs[1]"]
    assert details.error_info["UNKNOWN_TOKEN_ID_ERROR"] == {"token_id": str(bad_id), "item": "1"}


def test_strict_decode_of_invalid_utf8_names_item_and_byte_offset(stub):
    ok = pb.TokenIds(ids=[15339])  # "hello"
    bad = pb.TokenIds(ids=[15339, LONE_BYTE_TOKEN])  # "hello" + 0xE2: invalid at byte 5
    request = pb.DecodeRequest(model="cl100k_base", inputs=[ok, ok, bad], errors=pb.DecodeRequest.ERRORS_STRICT)
    error = rpc_error(stub.Decode, request, timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = details_of(error)
    assert list(details.violations) == ["inputs[2]"]
    assert "byte offset 5" in details.violations["inputs[2]"]
    assert details.error_info["UNICODE_DECODE_ERROR"] == {"offset": "5", "item": "2"}


@pytest.mark.parametrize(
    "ref,listed",
    [
        ("gpt-9", ["cl100k_base", "o200k_base"]),
        ("cl100k_base@7", ["cl100k_base@1"]),
        ("cl100k_base@canary", ["cl100k_base@1"]),
        ("bad name!", ["cl100k_base", "o200k_base"]),
    ],
)
@pytest.mark.parametrize("method", ["Encode", "CountTokens", "Decode", "GetModel"])
def test_unknown_model_is_not_found_listing_what_exists(stub, ref, listed, method):
    request = {
        "Encode": pb.EncodeRequest(model=ref, inputs=_texts("x")),
        "CountTokens": pb.CountTokensRequest(model=ref, inputs=_texts("x")),
        "Decode": pb.DecodeRequest(model=ref, inputs=[pb.TokenIds(ids=[1])]),
        "GetModel": pb.GetModelRequest(model=ref),
    }[method]
    error = rpc_error(getattr(stub, method), request, timeout=10)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    for name in listed:
        assert name in error.details()
    info = details_of(error).error_info["MODEL_NOT_FOUND_ERROR"]
    assert info["ref"] == ref
    assert all(name in info["available"] for name in listed)


def test_missing_model_is_invalid_argument(stub):
    error = rpc_error(stub.Encode, pb.EncodeRequest(inputs=_texts("x")), timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details_of(error).violations
    assert list(violations) == ["model"]
    assert "cl100k_base" in violations["model"]  # says what could be named


@pytest.mark.parametrize("field", ["allowed", "disallowed"])
@pytest.mark.parametrize("mode", [Mode.MODE_UNSPECIFIED, Mode.MODE_NONE, Mode.MODE_ALL])
def test_tokens_without_listed_mode_is_invalid_argument(stub, field, mode):
    policy = pb.SpecialTokenPolicy(**{field: pb.SpecialTokenSet(mode=mode, tokens=[EOT])})
    error = rpc_error(stub.Encode, pb.EncodeRequest(model="cl100k_base", inputs=_texts("x"), special_tokens=policy), timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = details_of(error).violations
    assert list(violations) == [f"special_tokens.{field}.tokens"]
    assert "MODE_LISTED" in violations[f"special_tokens.{field}.tokens"]


def test_too_many_items_states_the_limit(stub):
    error = rpc_error(stub.Encode, pb.EncodeRequest(model="cl100k_base", inputs=_texts(*["x"] * 65)), timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65 batch items" in error.details() and "limit of 64 (max_batch_items)" in error.details()
    details = details_of(error)
    assert details.error_info["REQUEST_LIMIT_EXCEEDED"] == {"limit_name": "max_batch_items", "limit": "64", "actual": "65"}
    assert details.quota and details.quota[0][0] == "max_batch_items"


def test_too_many_decode_items_states_the_limit(stub):
    request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[1])] * 65)
    error = rpc_error(stub.Decode, request, timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 64 (max_batch_items)" in error.details()


def test_too_many_bytes_states_the_limit(stub):
    # 4 items of 50001 bytes each (UTF-8 "é" is 2 bytes): 200004 > 200000, but only 100002 characters.
    request = pb.CountTokensRequest(model="cl100k_base", inputs=_texts(*["é" * 25000 + "x"] * 4))
    error = rpc_error(stub.CountTokens, request, timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "200004 input bytes" in error.details() and "limit of 200000 (max_request_bytes)" in error.details()


def test_message_over_max_message_bytes_is_resource_exhausted(stub):
    request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(data=b"x" * (1024 * 1024 + 1))])
    error = rpc_error(stub.Encode, request, timeout=10)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "1048576" in error.details()  # gRPC states the limit


def test_expired_deadline_is_deadline_exceeded_and_worker_survives(stub, first_worker):
    # 4 MB of random letters without whitespace: long pieces no cache answers, ~1 s of merging, against a
    # 1 ms deadline (repeated English was answered within 1 ms from the piece cache once the engine went native).
    rng = random.Random(11)
    texts = _texts(*["".join(rng.choices(string.ascii_lowercase, k=500_000)) for _ in range(8)])
    error = rpc_error(stub.CountTokens, pb.CountTokensRequest(model="o200k_base", inputs=texts), timeout=0.001)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    _, call = stub.ListModels.with_call(pb.ListModelsRequest(), timeout=10)
    assert dict(call.initial_metadata())["tokend-worker"] == first_worker


def test_worker_still_serving_after_every_error(stub, first_worker, shared_server):
    response, call = stub.Encode.with_call(pb.EncodeRequest(model="cl100k_base", inputs=_texts("hello world")), timeout=10)
    assert list(response.results[0].ids) == [15339, 1917]
    assert dict(call.initial_metadata())["tokend-worker"] == first_worker
    assert not shared_server.events("worker_died")
    assert not shared_server.events("rpc_internal_error")
