"""The client's own surface against a real server: models, pinning, errors, deadlines, lifecycle."""

from __future__ import annotations

import pickle
import random
import string

import grpc
import pytest
import tiktoken

import tokend_client
from tokend_client import TokendClient


def test_list_models_names_the_default_registry(client):
    models = {model.name: model for model in client.list_models()}
    assert {"cl100k_base", "o200k_base"} <= set(models)
    cl100k = models["cl100k_base"]
    assert cl100k.latest_version in cl100k.versions
    assert list(cl100k.versions) == sorted(cl100k.versions)


def test_get_model_describes_one_exact_version(client):
    expected = tiktoken.get_encoding("cl100k_base")
    details = client.get_model("cl100k_base")
    assert details.name == "cl100k_base" and details.version >= 1
    assert details.ref == f"cl100k_base@{details.version}"
    assert details.n_vocab == expected.n_vocab
    assert details.max_token_value == expected.max_token_value
    assert dict(details.special_tokens) == expected._special_tokens
    assert details.eot_token == expected.eot_token
    assert details.pattern == expected._pat_str
    assert details.payload_format == "tiktoken"
    assert details.algorithm == "byte_level_bpe"
    assert (details.bos_token, details.eos_token, details.unk_token, details.pad_token) == (None,) * 4
    assert len(details.sha256) == 64 and int(details.sha256, 16) >= 0
    assert client.get_model(details.ref) == details


def test_get_encoding_is_pinned_to_the_version_that_answered(client):
    latest = client.get_model("cl100k_base").version
    enc = client.get_encoding("cl100k_base")
    assert enc.version == latest and enc.name == "cl100k_base"
    assert enc._ref == f"cl100k_base@{latest}"
    assert "cl100k_base" in repr(enc) and str(latest) in repr(enc)


@pytest.mark.parametrize("ref", ["no_such_model", "cl100k_base@999", "cl100k_base@no_such_alias"])
def test_unknown_model_is_a_value_error_listing_what_exists(client, ref):
    with pytest.raises(tokend_client.ModelNotFoundError) as caught:
        client.get_encoding(ref)
    error = caught.value
    assert isinstance(error, ValueError) and isinstance(error, tokend_client.TokendError)
    assert error.code == grpc.StatusCode.NOT_FOUND
    assert error.ref == ref
    assert any(name.startswith("cl100k_base") for name in error.available), error.available
    assert "cl100k_base" in str(error)


def test_errors_survive_pickling(client):
    enc = client.get_encoding("cl100k_base")
    with pytest.raises(tokend_client.DisallowedSpecialTokenError) as caught:
        enc.encode_batch(["a", "b<|endoftext|>"])
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is tokend_client.DisallowedSpecialTokenError
    assert (copy.token, copy.offset, copy.item, copy.code) == ("<|endoftext|>", 1, 1, grpc.StatusCode.INVALID_ARGUMENT)
    assert str(copy) == str(caught.value)


def test_encode_bytes_and_count_ordinary(client):
    enc = client.get_encoding("cl100k_base")
    oracle = tiktoken.get_encoding("cl100k_base")
    data = "naïve café 😉".encode() + b"\xff\xfe raw"
    assert enc.encode_bytes(data) == oracle._encode_bytes(data)
    assert enc.count_ordinary("<|endoftext|> hi") == len(oracle.encode_ordinary("<|endoftext|> hi"))
    assert enc.decode_single_token_bytes(15339) == b"hello"
    assert enc.decode_tokens_bytes([15339, 1917]) == [b"hello", b" world"]


def test_a_deadline_too_short_is_a_timeout_error(server, client):
    # 4 MB of random letters without whitespace: four 1 MB pieces that no cache can answer, ~1 s of merging
    # for the engine (docs/bench-engine.md, worst case); 50 ms cannot be enough (orders of magnitude apart).
    rng = random.Random(5)
    texts = ["".join(rng.choices(string.ascii_lowercase, k=1_000_000)) for _ in range(4)]
    with TokendClient(server.target, timeout=0.05, retries=0, connections=1) as hurried:
        enc = tokend_client.RemoteEncoding(hurried, client.get_model("cl100k_base"))
        with pytest.raises(tokend_client.DeadlineExceededError) as caught:
            enc.count_batch(texts)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_nobody_listening_is_service_unavailable_after_retries():
    from support.server import free_port

    with TokendClient(f"127.0.0.1:{free_port()}", timeout=10, retries=1) as lonely:
        with pytest.raises(tokend_client.ServiceUnavailableError) as caught:
            lonely.list_models()
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timeout": 0}, "timeout must be a positive"),
        ({"retries": 5}, "retries must be between 0 and 4"),
        ({"connections": 0}, "connections must be an integer >= 1"),
        ({"compression": "brotli"}, "compression must be None, 'gzip' or 'deflate'"),
        ({"max_batch_items": 0}, "max_batch_items must be at least 1"),
    ],
)
def test_bad_settings_name_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        TokendClient("127.0.0.1:1", **arguments)


def test_compression_and_a_closed_client(server):
    with TokendClient(server.target, compression="gzip", connections=1) as zipped:
        assert zipped.get_encoding("o200k_base").encode("hello world") == tiktoken.get_encoding("o200k_base").encode(
            "hello world"
        )
    with pytest.raises(ValueError):  # grpc refuses calls on a closed channel
        zipped.list_models()


def test_async_client_surface(server, async_runner):
    async def scenario():
        async with tokend_client.AsyncTokendClient(server.target, connections=2) as aclient:
            names = [model.name for model in await aclient.list_models()]
            enc = await aclient.get_encoding("cl100k_base")
            ids = await enc.encode("hello <|endoftext|>", allowed_special="all")
            try:
                await aclient.get_model("nope")
            except tokend_client.ModelNotFoundError as error:
                missing = error
            return names, enc.version, ids, await enc.count("hello world"), missing, aclient.worker_calls()

    names, version, ids, count, missing, workers = async_runner.run(scenario())
    assert "cl100k_base" in names and version >= 1
    assert ids == [15339, 220, 100257] and count == 2
    assert missing.ref == "nope" and "cl100k_base" in ",".join(missing.available)
    assert sum(workers.values()) >= 4  # every answered call names its worker


def test_async_client_created_outside_a_loop_binds_to_the_loop_that_uses_it(server, async_runner):
    import asyncio

    aclient = tokend_client.AsyncTokendClient(server.target, connections=1)  # no loop running here

    async def encode():
        enc = await aclient.get_encoding("cl100k_base")
        return await enc.encode("hello world")

    assert async_runner.run(encode()) == [15339, 1917]
    with pytest.raises(RuntimeError, match="create one client per event loop"):
        asyncio.run(encode())  # a second loop
    async_runner.run(aclient.close())
