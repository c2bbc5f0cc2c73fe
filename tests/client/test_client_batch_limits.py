"""Batches far larger than a server's per-request limits come back complete and in order.

The server here allows 7 items and 3000 input bytes per request; the clients start from the default
limits (1024 items, 8 MiB), so they must learn the real ones from RESOURCE_EXHAUSTED answers, re-split,
and reassemble. Expected ids come from tiktoken.
"""

from __future__ import annotations

import pytest
import tiktoken
from support.server import TokendServer

import tokend_client

MAX_ITEMS = 7
MAX_BYTES = 3000


@pytest.fixture(scope="module")
def small_server():
    server = TokendServer(
        "--max-batch-items", str(MAX_ITEMS), "--max-request-bytes", str(MAX_BYTES),
        workers=1, models=["cl100k_base"], metrics=False,
    ).start()  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def texts():
    # 600 distinct texts of 1..~700 bytes, many scripts: ~86+ requests at 7 items each, more by bytes.
    words = ["tokend", "naïve", "日本語", "😉", "don’t", "1234", "  ", "\r\n", "<|endoftext|>", "Ωμέγα"]
    return [f"{i}: " + " ".join(words[(i + k) % len(words)] for k in range(i % 97)) for i in range(600)]


def test_sync_batches_are_split_learned_and_reassembled(small_server, texts):
    oracle = tiktoken.get_encoding("cl100k_base")
    expected = oracle.encode_batch(texts, disallowed_special=())
    with tokend_client.TokendClient(small_server.target, connections=3) as client:
        enc = client.get_encoding("cl100k_base")
        assert enc.encode_batch(texts, disallowed_special=()) == expected
        assert (client.limits.max_items, client.limits.max_bytes) == (MAX_ITEMS, MAX_BYTES)
        assert sum(client.worker_calls().values()) >= len(texts) // MAX_ITEMS  # answered requests
        assert enc.count_batch(texts, disallowed_special=()) == [len(ids) for ids in expected]
        assert enc.encode_ordinary_batch(texts) == expected
        assert enc.decode_batch(expected) == texts  # 4 bytes per id: split by bytes as well


def test_async_batches_are_split_learned_and_reassembled(small_server, texts, async_runner):
    oracle = tiktoken.get_encoding("cl100k_base")
    expected = oracle.encode_batch(texts, allowed_special="all")

    async def scenario():
        async with tokend_client.AsyncTokendClient(small_server.target, connections=3) as client:
            enc = await client.get_encoding("cl100k_base")
            ids = await enc.encode_batch(texts, allowed_special="all")
            counts = await enc.count_batch(texts, allowed_special="all")
            decoded = await enc.decode_batch(ids)
            return ids, counts, decoded, (client.limits.max_items, client.limits.max_bytes)

    ids, counts, decoded, limits = async_runner.run(scenario())
    assert ids == expected
    assert counts == [len(x) for x in expected]
    assert decoded == texts
    assert limits == (MAX_ITEMS, MAX_BYTES)


def test_configured_limits_split_before_the_server_refuses(small_server, texts):
    with tokend_client.TokendClient(small_server.target, max_batch_items=5, max_request_bytes=2000) as client:
        enc = client.get_encoding("cl100k_base")
        assert enc.count_batch(texts[:50], disallowed_special=()) == [
            len(ids) for ids in tiktoken.get_encoding("cl100k_base").encode_batch(texts[:50], disallowed_special=())
        ]
        assert (client.limits.max_items, client.limits.max_bytes) == (5, 2000)  # nothing to learn


def test_an_item_over_the_byte_limit_cannot_be_split(small_server):
    with tokend_client.TokendClient(small_server.target) as client:
        enc = client.get_encoding("cl100k_base")
        with pytest.raises(tokend_client.LimitExceededError) as caught:
            enc.encode("x" * (MAX_BYTES + 1))
        assert caught.value.item is None and caught.value.limit == MAX_BYTES
        assert "max_request_bytes" in str(caught.value)
        with pytest.raises(tokend_client.LimitExceededError) as caught:
            enc.count_batch(["small", "y" * (MAX_BYTES + 1), "small"])
        assert caught.value.item == 1 and caught.value.limit == MAX_BYTES
