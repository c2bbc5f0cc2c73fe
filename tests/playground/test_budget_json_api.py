"""The playground's budget endpoints over a real HTTP server on 127.0.0.1: /api/v1/truncate, /api/v1/chunk and
encode's "offsets": true reach the service, and their errors are the JSON API's (400 naming the argument,
413 for limits). tiktoken is the oracle for ids and offsets; the cuts are the engine's."""

from __future__ import annotations

import pytest

import tokend

from .conftest import OPENAI_MODELS

TEXT = "The quick brown fox jumps over the lazy dog. 🤖 Ünïcödé!\n\nA second paragraph, with two sentences. Yes."


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_encode_with_offsets_gives_tiktokens_ids_and_offsets(client, oracle, model):
    payload = client.post("/api/v1/encode", {"model": model, "inputs": [TEXT, ""], "offsets": True}).json()
    for text, result in zip([TEXT, ""], payload["results"]):
        assert result["ids"] == oracle[model].encode(text)
        assert [start for start, _ in result["offsets"]] == oracle[model].decode_with_offsets(result["ids"])[1]
        assert [text.encode()[start:end] for start, end in result["byte_offsets"]] == oracle[model].decode_tokens_bytes(result["ids"])
    plain = client.post("/api/v1/encode", {"model": model, "text": TEXT}).json()
    assert "offsets" not in plain["results"][0]


@pytest.mark.parametrize("side", ["right", "left"])
def test_truncate(client, oracle, side):
    payload = client.post("/api/v1/truncate", {"model": "cl100k_base", "inputs": [TEXT, "hi"], "max_tokens": 7, "side": side}).json()
    expected = tokend.get_encoding("cl100k_base").truncate(TEXT, 7, side)
    kept = payload["results"][0]
    assert (kept["text"], kept["start"], kept["end"], kept["ids"]) == (expected.text, expected.start, expected.end, expected.ids)
    assert kept["ids"] == oracle["cl100k_base"].encode(kept["text"]) and kept["token_count"] <= 7
    assert kept["truncated"] and kept["total_tokens"] == len(oracle["cl100k_base"].encode(TEXT))
    assert TEXT.encode()[kept["byte_start"] : kept["byte_end"]] == kept["text"].encode()
    assert payload["results"][1]["text"] == "hi" and not payload["results"][1]["truncated"]


def test_chunk(client, oracle):
    body = {"model": "o200k_base", "text": TEXT, "max_tokens": 8, "overlap": 2, "prefer": "sentence"}
    chunks = client.post("/api/v1/chunk", body).json()["results"][0]["chunks"]
    expected = tokend.get_encoding("o200k_base").chunk(TEXT, 8, 2, "sentence")
    assert [(c["text"], c["start"], c["end"], c["ids"]) for c in chunks] == [(c.text, c.start, c.end, c.ids) for c in expected]
    assert all(c["ids"] == oracle["o200k_base"].encode(c["text"]) for c in chunks)


@pytest.mark.parametrize(
    "path, body, status, argument",
    [
        ("/api/v1/truncate", {"model": "cl100k_base", "text": "x", "max_tokens": -1}, 400, "max_tokens"),
        ("/api/v1/truncate", {"model": "cl100k_base", "text": "x", "max_tokens": 1, "side": "middle"}, 400, "side"),
        ("/api/v1/chunk", {"model": "cl100k_base", "text": "x", "max_tokens": 2, "overlap": 2}, 400, "overlap"),
        ("/api/v1/chunk", {"model": "cl100k_base", "text": "x", "max_tokens": 2, "prefer": "chapter"}, 400, "prefer"),
        ("/api/v1/chunk", {"model": "cl100k_base", "inputs": ["ok", "🧪"], "max_tokens": 2}, 400, "max_tokens"),
        ("/api/v1/chunk", {"model": "cl100k_base", "text": " a b c", "max_tokens": 1, "max_chunks": 2}, 400, "max_chunks"),
    ],
)
def test_budget_errors_name_the_argument(client, path, body, status, argument):
    reply = client.post(path, body)
    assert reply.status == status, reply.body
    assert reply.error["code"] == "invalid_argument" and reply.error["argument"] == argument


@pytest.mark.parametrize(
    "path, body, fragment",
    [
        ("/api/v1/truncate", {"model": "cl100k_base", "text": "x"}, '"max_tokens" is required'),
        ("/api/v1/truncate", {"model": "cl100k_base", "text": "x", "max_tokens": "3"}, "whole number"),
        ("/api/v1/chunk", {"model": "cl100k_base", "text": "x", "max_tokens": 3, "overlap": True}, "whole number"),
        ("/api/v1/chunk", {"model": "cl100k_base", "text": "x", "max_tokens": 3, "size": 3}, "unknown field"),
    ],
)
def test_malformed_requests_are_400(client, path, body, fragment):
    reply = client.post(path, body)
    assert reply.status == 400 and fragment in reply.error["message"]


def test_offsets_are_bounded_like_detail(client, playground):
    limit = playground.api.limits.max_detail_bytes
    reply = client.post("/api/v1/encode", {"model": "cl100k_base", "text": "a" * (limit + 1), "offsets": True})
    assert reply.status == 413 and reply.error["setting"] == "max_detail_bytes"


def test_get_on_a_budget_endpoint_is_405(client):
    assert client.get("/api/v1/chunk").status == 405
