"""Hostile requests to the JSON API get the service layer's bounds, as the gRPC API does (issue 13: the
same holes were open in both; tests/server/test_hostile_requests.py has the gRPC side); and hostile HTTP
(deep JSON, huge integers, methods, Content-Length values, requests that do not parse) gets a JSON error
with a 4xx and the page's security headers, never a closed connection or an HTML page."""

from __future__ import annotations

import json

import pytest

from tokend.playground import PlaygroundLimits, PlaygroundServer

from .json_client import JsonClient, parse_reply

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
    # 10,000 strings (under the 16,384 a set may list) of 51 bytes: 510,000 bytes, over the 400,000 allowed.
    body = {"model": "cl100k_base", "text": "hi",
            "allowed_special": [f"<|a string that is not a special token, no {i:06d}|>" for i in range(10_000)]}
    reply = bounded.post("/api/v1/count", body)
    assert reply.status == 413 and reply.error["setting"] == "max_request_bytes"


def test_a_set_over_the_listed_cap_is_400_naming_it(bounded):
    body = {"model": "cl100k_base", "text": "hi", "disallowed_special": [f"s{i}" for i in range(20_000)]}
    reply = bounded.post("/api/v1/count", body)
    assert reply.status == 400 and reply.error["field"] == "disallowed_special"
    assert "20000 strings listed; at most 16384 per set" in reply.error["message"]


def test_decode_amplification_is_refused_before_the_text_is_built(bounded):
    reply = bounded.post("/api/v1/decode", {"model": "cl100k_base", "ids": [LONGEST_TOKEN] * 40_000})  # 5 MB of text
    assert reply.status == 413
    assert (reply.error["setting"], reply.error["limit"]) == ("max_message_bytes", 1 << 20)
    assert len(reply.body) < 1000


def test_chunk_texts_an_overlap_repeats_are_refused_past_the_answer_limit(bounded):
    # Each chunk's text goes in the JSON answer (gRPC's chunks carry spans only), and an overlap repeats it in
    # every chunk: 600 tokens of 128 spaces (77 KB) in chunks of 300 overlapping by 299 are 301 chunks of
    # 38 KB, 11.5 MB of text for 270 KB of ids (within the 1 MiB answer limit). A 512 KB body so made was a
    # 536 MB answer and took the playground +2 GB.
    body = {"model": "cl100k_base", "text": " " * 128 * 600, "max_tokens": 300, "overlap": 299, "prefer": "token"}
    reply = bounded.post("/api/v1/chunk", body)
    assert reply.status == 413, (reply.status, len(reply.body))
    assert (reply.error["setting"], reply.error["limit"]) == ("max_message_bytes", 1 << 20)
    # refused as the chunks are made, once past the limit (not after the 11,558,400 bytes of them)
    assert "bytes of chunk text at least" in reply.error["message"] and "overlap" in reply.error["message"]
    assert (1 << 20) < int(reply.error["message"].split("request has ")[1].split()[0]) <= (1 << 20) + 300 * 128
    assert len(reply.body) < 1000


def test_chunk_texts_within_the_answer_limit_are_answered(bounded):
    # The same text without an overlap (its chunks' texts are the text once), and with one of a third:
    # 115 KB and 154 KB of chunk text, within the 1 MiB.
    for overlap, chunks in ((0, 3), (100, 4)):
        body = {"model": "cl100k_base", "text": " " * 128 * 900, "max_tokens": 300, "overlap": overlap,
                "prefer": "token"}
        reply = bounded.post("/api/v1/chunk", body)
        assert reply.status == 200, reply.body[:300]
        found = reply.json()["results"][0]["chunks"]
        assert len(found) == chunks
        assert all(chunk["text"] == body["text"][chunk["start"]:chunk["end"]] for chunk in found)


def test_a_megabyte_model_name_gets_a_short_404(bounded):
    reply = bounded.post("/api/v1/count", {"model": "m" * 1_000_000, "text": "x"})
    assert reply.status == 404
    assert len(reply.body) < 2000 and "1000000 characters" in reply.error["message"]


@pytest.mark.parametrize("ref", ["a@", "@1", "x@y@z", "cl100k_base@0"])
def test_malformed_references_are_400(bounded, ref):
    reply = bounded.post("/api/v1/count", {"model": ref, "text": "x"})
    assert reply.status == 400 and reply.error["field"] == "model"


_VALID = {
    "encode": {"model": "cl100k_base", "text": "hi there"},
    "count": {"model": "cl100k_base", "text": "hi there"},
    "decode": {"model": "cl100k_base", "ids": [1, 2, 3]},
    "truncate": {"model": "cl100k_base", "text": "hi there", "max_tokens": 1},
    "chunk": {"model": "cl100k_base", "text": "hi there", "max_tokens": 1},
}
_FIELDS = {
    "encode": ["model", "inputs", "text", "allowed_special", "disallowed_special", "detail", "offsets"],
    "count": ["model", "inputs", "text", "allowed_special", "disallowed_special"],
    "decode": ["model", "inputs", "ids", "errors", "output"],
    "truncate": ["model", "inputs", "text", "allowed_special", "disallowed_special", "max_tokens", "side"],
    "chunk": ["model", "inputs", "text", "allowed_special", "disallowed_special", "max_tokens", "overlap", "prefer",
              "max_chunks"],
}  # fmt: skip


@pytest.mark.parametrize("endpoint, field", [(endpoint, field) for endpoint, fields in _FIELDS.items() for field in fields])
def test_a_field_of_another_json_type_is_a_4xx_naming_it(bounded, endpoint, field):
    # `"prefer": ["a"]` was a 500 (a list is not hashable); every field gets each JSON type it does not take.
    for value in (["a"], {"a": 1}, 2**70, 1.5, [["a"]]):
        reply = bounded.post(f"/api/v1/{endpoint}", {**_VALID[endpoint], field: value})
        if reply.status == 200:
            continue  # a value the field takes (a list of strings for a special-token set, a large budget)
        assert 400 <= reply.status < 500, (field, value, reply.body[:300])
        named = reply.error.get("field") or reply.error["message"]
        assert field in named or (field == "ids" and "inputs[0]" in named), (field, value, reply.error)


_CHAT_VALID = {"model": "o200k_base", "messages": [{"role": "user", "content": "hi"}]}
_CHAT_FIELDS = ["model", "messages", "conversations", "tools", "add_generation_prompt", "content_special_tokens", "per_message"]
_LONG = "q" * 200_000


@pytest.mark.parametrize("endpoint, field", [(endpoint, field) for endpoint, fields in _FIELDS.items() for field in fields]
                         + [("count_chat", field) for field in _CHAT_FIELDS] + [pytest.param("chunk", _LONG[:5_000], id="chunk-unknown-field")])
def test_a_long_string_where_a_field_takes_something_else_is_quoted_short(bounded, endpoint, field):
    # `"side": "<40 MB>"` came back whole in the 400's message (40,000,148 bytes; eight at once took the
    # playground +926 MiB against +471 for the same bodies under a field it does not know): side, prefer,
    # errors, output, content_special_tokens, a whole number's field, a special-token set as a string (twice),
    # and unknown field names. Echoed input is cut to 100 characters (docs/api.md, Hostile input).
    body = {**(_CHAT_VALID if endpoint == "count_chat" else _VALID[endpoint]), field: _LONG}
    reply = bounded.post(f"/api/v1/{endpoint}", body)
    if reply.status == 200:
        return  # a field that takes a string (a text, a model name is a 404 below)
    assert 400 <= reply.status < 500, (field, reply.body[:300])
    assert len(reply.body) < 2_000, (endpoint, field, reply.body[:300])


def test_many_unknown_fields_are_named_a_few_at_a_time(bounded):
    reply = bounded.post("/api/v1/count", {**_VALID["count"], **{f"field{index}": 1 for index in range(20_000)}})
    assert reply.status == 400 and "unknown field(s) field0, field1" in reply.error["message"]
    assert "and 19992 more" in reply.error["message"] and len(reply.body) < 2_000


@pytest.mark.parametrize("endpoint, body", [
    ("truncate", {"model": "cl100k_base", "text": "a\ud800b c", "max_tokens": 3}),
    ("chunk", {"model": "cl100k_base", "text": "a\ud800b c", "max_tokens": 3}),
    ("chunk", {"model": "cl100k_base", "inputs": ["\udc00x", "y\ude00\ud83d"], "max_tokens": 1}),
])  # fmt: skip
def test_a_lone_surrogate_in_a_text_comes_back_as_its_json_escape(bounded, endpoint, body):
    # The text a truncation or a chunk keeps holds the caller's lone surrogate; it was written with
    # surrogatepass (ED A0 80: not UTF-8, so not JSON a strict reader takes; a browser saw three U+FFFD).
    texts = body.get("inputs", [body.get("text")])
    reply = bounded.post(f"/api/v1/{endpoint}", body)
    assert reply.status == 200, reply.body[:300]
    reply.body.decode("utf-8")  # strict: raises on the bytes surrogatepass wrote
    # The caller's own string, surrogates and all: a truncation's span, or every chunk laid end to end.
    for text, result in zip(texts, reply.json()["results"], strict=True):
        if endpoint == "truncate":
            assert result["text"] == text[result["start"]:result["end"]] and "\ud800" in result["text"], result
        else:
            assert "".join(chunk["text"] for chunk in result["chunks"]) == text, result


# ---- HTTP itself: every refusal is a JSON error with a 4xx and the page's security headers ----------------
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")


def _refused(raw: bytes, status: int | None = None) -> dict:
    reply = parse_reply(raw)
    assert 400 <= reply.status < 500, (reply.status, reply.body[:300])
    if status is not None:
        assert reply.status == status, (reply.status, reply.body[:300])
    assert reply.headers.get("Content-Type") == "application/json", reply.headers
    for name in SECURITY_HEADERS:
        assert name in reply.headers, (name, reply.headers)
    error = json.loads(reply.body)["error"]
    assert set(error) >= {"code", "message"} and error["message"], error
    return error


def _post_raw(client: JsonClient, body: bytes, *, path: str = "/api/v1/encode", headers: str | None = None) -> bytes:
    head = headers if headers is not None else f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return client.raw(f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n".encode() + body)


@pytest.mark.parametrize("depth", [1_000, 60_000])  # deeper: over the structure limit, a 413
def test_deeply_nested_json_is_a_400(bounded, depth):
    body = b'{"model": "cl100k_base", "text": ' + b"[" * depth + b"]" * depth + b"}"
    error = _refused(_post_raw(bounded, body), 400)
    assert "nest" in error["message"]


def test_a_5000_digit_integer_is_a_400(bounded):
    body = b'{"model": "cl100k_base", "ids": [' + b"7" * 5000 + b"]}"
    error = _refused(_post_raw(bounded, body, path="/api/v1/decode"), 400)
    assert "digits" in error["message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"])
def test_methods_the_page_does_not_serve_are_405_json(bounded, method):
    raw = bounded.raw(f"{method} /api/v1/encode HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".encode())
    error = _refused(raw, 405)
    assert method in error["message"]
    assert parse_reply(raw).headers["Allow"] == "GET, HEAD, POST"


def test_head_is_get_without_a_body(bounded):
    raw = bounded.raw(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 3" in head and body == b""
    assert b"Content-Security-Policy" in head
    raw = bounded.raw(b"HEAD /no/such/path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404") and body == b""


@pytest.mark.parametrize("value", ["-1", "+5", "1_0", " 5x", "5, 5", "٣"])
def test_a_content_length_that_is_not_a_plain_count_is_a_400(bounded, value):
    error = _refused(_post_raw(bounded, b"{}", headers=f"Content-Length: {value}\r\n"), 400)
    assert "Content-Length" in error["message"]


def test_two_content_lengths_are_a_400(bounded):
    _refused(_post_raw(bounded, b"{}", headers="Content-Length: 2\r\nContent-Length: 2\r\n"), 400)


@pytest.mark.parametrize("excess", [1, 10**30])
def test_a_body_over_the_limit_is_still_a_413(bounded, excess):
    limit = PlaygroundLimits(max_request_bytes=400_000).max_body_bytes
    error = _refused(_post_raw(bounded, b"", headers=f"Content-Length: {limit + excess}\r\n"), 413)
    assert error["limit"] == limit


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),  # a malformed request line
        (b"GET / HTTP/9.9\r\n\r\n", 400),  # an HTTP version the page does not speak (the stdlib's 505)
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),  # a URL over 64 KiB
        (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n", 431),  # > 100 headers
        (b"GET / HTTP/1.1\r\nX-Long: " + b"y" * 70_000 + b"\r\n\r\n", 431),  # a header line over 64 KiB
    ],
)
def test_http_that_does_not_parse_gets_a_json_4xx(bounded, request_bytes, status):
    _refused(bounded.raw(request_bytes), status)


# ---- a body's structure is counted before it is parsed ---------------------------------------------------
def test_millions_of_empty_lists_are_413_before_the_body_is_parsed(client):
    """A 12 MB decode body of 4,000,000 empty id lists (under the 48 MiB body limit) was parsed whole — ~2 s
    of CPU and ~300 MiB — before its 413 for max_batch_items (46 MB: 7.7 s and +1.2 GiB kept)."""
    import time

    body = b'{"model": "gpt2", "inputs": [' + b",".join([b"[]"] * 4_000_000) + b"]}"
    assert len(body) < PlaygroundLimits().max_body_bytes
    started = time.process_time()
    reply = client.post("/api/v1/decode", body)
    spent = time.process_time() - started
    assert reply.status == 413 and reply.error["setting"] == "max_request_bytes", reply.body[:300]
    assert "objects, lists and commas count 40,000,016 bytes" in reply.error["message"]
    assert reply.error["limit"] == PlaygroundLimits().max_structure_bytes
    assert spent < 0.6, spent  # the scan: ~0.05 s (json.loads alone was ~2 s)


def test_large_acceptable_bodies_are_not_refused_for_their_structure(client, oracle):
    """The scan refuses nothing the service accepts: 8 MiB of text full of brackets, commas, escaped quotes
    and \\u escapes; 2,097,152 ids (8 MiB counted); 1,024 empty items; a chat of 10,000 messages."""
    limits = PlaygroundLimits()
    piece = '[{"a": [1, 2]}, {}], \\"quoted\\" \u00e9\u4e2d\x01 '  # 1 + 5 + 7 bytes past ASCII per piece
    text = piece * (limits.max_request_bytes // len(piece.encode()))
    assert len(text.encode()) <= limits.max_request_bytes
    body = json.dumps({"model": "cl100k_base", "text": text}).encode()  # ensure_ascii: \u00e9, \u4e2d, \u0001
    assert len(body) > limits.max_structure_bytes // 8  # scanned
    reply = client.post("/api/v1/count", body)
    assert reply.status == 200, reply.body[:300]
    assert reply.json()["total"] == len(oracle["cl100k_base"].encode(text, disallowed_special=()))

    ids = [15] * (limits.max_request_bytes // 4)  # "0" each: 2 MiB of answer
    reply = client.post("/api/v1/decode", {"model": "cl100k_base", "ids": ids})
    assert reply.status == 200 and len(reply.json()["results"][0]["text"]) == len(ids)
    reply = client.post("/api/v1/decode", {"model": "cl100k_base", "inputs": [[]] * limits.max_batch_items})
    assert reply.status == 200 and len(reply.json()["results"]) == limits.max_batch_items
    reply = client.post("/api/v1/count", {"model": "cl100k_base", "inputs": [""] * limits.max_batch_items})
    assert reply.status == 200 and reply.json()["total"] == 0

    messages = [{"role": "user" if index % 2 == 0 else "assistant", "content": f"[{index}], {{ok}}"} for index in range(10_000)]
    reply = client.post("/api/v1/count_chat", {"model": "o200k_base", "messages": messages, "per_message": False})
    assert reply.status == 200, reply.body[:300]


def test_the_structure_scan_skips_strings_whatever_they_hold():
    from tokend.playground.json_structure import structure_bytes

    assert structure_bytes(json.dumps({"text": '[[{,,}]] \\" \\\\" \u00e9'}).encode()) == 8  # the outer object
    assert structure_bytes(json.dumps(["a,b", "c]", 'd"[', "\\"]).encode()) == 8 + 3 * 2
    assert structure_bytes(b'{"ids": [1, 2, 3]}') == 2 * 8 + 2 * 2
