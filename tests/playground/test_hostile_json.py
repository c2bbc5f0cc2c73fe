"""Hostile requests to the JSON API get the service layer's bounds, as the gRPC API does (issue 13: the
same holes were open in both; tests/server/test_hostile_requests.py has the gRPC side)."""

from __future__ import annotations

import pytest

from tokend.playground import PlaygroundLimits, PlaygroundServer

from .json_client import JsonClient

LONGEST_TOKEN = 58040  # cl100k_base: 128 spaces (tiktoken's decode_single_token_bytes)


@pytest.fixture(scope="module")
def bounded(registry):
    limits = PlaygroundLimits(max_request_bytes=400_000, max_response_bytes=1 << 20)
    with PlaygroundServer(registry, port=0, limits=limits) as server:
        yield JsonClient(server.url)


def test_strings_that_are_not_special_tokens_are_capped(bounded):
    body = {"model": "cl100k_base", "text": "hi", "disallowed_special": [f"word{index}" for index in range(65)]}
    reply = bounded.post("/api/v1/encode", body)
    assert reply.status == 400
    assert reply.error["field"] == "disallowed_special" and "at most 64" in reply.error["message"]


def test_listed_strings_count_against_the_request_bytes(bounded):
    body = {"model": "cl100k_base", "text": "hi", "allowed_special": [f"<|not special {i:06d}|>" for i in range(20_000)]}
    reply = bounded.post("/api/v1/count", body)
    assert reply.status == 413 and reply.error["setting"] == "max_request_bytes"


def test_decode_amplification_is_refused_before_the_text_is_built(bounded):
    reply = bounded.post("/api/v1/decode", {"model": "cl100k_base", "ids": [LONGEST_TOKEN] * 40_000})  # 5 MB of text
    assert reply.status == 413
    assert (reply.error["setting"], reply.error["limit"]) == ("max_message_bytes", 1 << 20)
    assert len(reply.body) < 1000


def test_a_megabyte_model_name_gets_a_short_404(bounded):
    reply = bounded.post("/api/v1/count", {"model": "m" * 1_000_000, "text": "x"})
    assert reply.status == 404
    assert len(reply.body) < 2000 and "1000000 characters" in reply.error["message"]


@pytest.mark.parametrize("ref", ["a@", "@1", "x@y@z", "cl100k_base@0"])
def test_malformed_references_are_400(bounded, ref):
    reply = bounded.post("/api/v1/count", {"model": ref, "text": "x"})
    assert reply.status == 400 and reply.error["field"] == "model"
