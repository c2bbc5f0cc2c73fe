"""The playground's JSON API over a real HTTP server on 127.0.0.1, held to tiktoken (the oracle) and to the
in-process engine: same ids, counts, decoded text, special-token policy and errors as the gRPC API."""

from __future__ import annotations

import base64

import pytest

from tokend.playground import PlaygroundLimits, PlaygroundServer

from .conftest import OPENAI_MODELS
from .json_client import JsonClient

TEXTS = [
    "Hello world!",
    "",
    "   leading spaces,\ttabs\r\nand CRLF\n\n\n",
    "def count(text: str) -> int:\n    return len(enc.encode(text))  # 42\n",
    "naïve café, 1234567890 ½ ∑ ⇔ ʃɪp",
    "語の単語は複数のトークンに分かれる",
    "emoji 🤖🧪 and flags 🇩🇪",
    "<|endoftext> is not a special token, <|fim_prefix is not either",
]


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_encode_gives_tiktokens_ids_and_the_engines(client, oracle, registry, model):
    reply = client.post("/api/v1/encode", {"model": model, "inputs": TEXTS})
    assert reply.status == 200, reply.body
    payload = reply.json()
    expected = [oracle[model].encode(text) for text in TEXTS]
    assert [result["ids"] for result in payload["results"]] == expected
    assert [result["ids"] for result in payload["results"]] == [registry.get_encoding(model).encode(t) for t in TEXTS]
    assert payload["total_tokens"] == sum(map(len, expected))
    assert payload["model"]["name"] == model
    assert payload["model"]["version"] == registry.resolve(model).version
    assert "tokens" not in payload["results"][0]  # detail only on request


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_count_matches_tiktoken(client, oracle, model):
    payload = client.post("/api/v1/count", {"model": model, "inputs": TEXTS}).json()
    assert payload["counts"] == [len(oracle[model].encode(text)) for text in TEXTS]
    assert payload["total"] == sum(payload["counts"])


def test_text_shorthand_is_a_one_item_batch(client, oracle):
    payload = client.post("/api/v1/encode", {"model": "cl100k_base", "text": "hello world"}).json()
    assert payload["results"] == [{"ids": oracle["cl100k_base"].encode("hello world")}]
    assert payload["results"][0]["ids"] == [15339, 1917]  # tiktoken: b"hello" → 15339, b" world" → 1917


@pytest.mark.parametrize("model", OPENAI_MODELS)
def test_detail_shows_each_tokens_id_bytes_and_text(client, oracle, model):
    text = "Hi 語 <|endoftext|>!"
    payload = client.post(
        "/api/v1/encode", {"model": model, "text": text, "detail": True, "allowed_special": "all"},
    ).json()
    tiktoken_encoding = oracle[model]
    tokens = payload["results"][0]["tokens"]
    assert [token["id"] for token in tokens] == tiktoken_encoding.encode(text, allowed_special="all")
    for token in tokens:
        data = tiktoken_encoding.decode_single_token_bytes(token["id"])
        assert token["hex"] == data.hex()
        try:
            assert token["text"] == data.decode("utf-8")
        except UnicodeDecodeError:
            assert token["text"] is None  # part of 語 (e8 aa 9e): the page shows bytes
    assert [token["special"] for token in tokens].count(True) == 1
    special = next(token for token in tokens if token["special"])
    assert (special["id"], special["text"]) == (tiktoken_encoding.eot_token, "<|endoftext|>")
    if model == "cl100k_base":
        # 語 is split inside its UTF-8 bytes by cl100k_base (tiktoken: b" \xe8", b"\xaa", b"\x9e")
        assert any(token["text"] is None for token in tokens)


class TestSpecialTokenPolicy:
    """tiktoken's semantics: disallowed by default (an error), allowed → the id, neither → ordinary text."""

    TEXT = "hi <|endoftext|> there"

    def test_default_policy_rejects_the_special_token_naming_it_and_its_offset(self, client):
        reply = client.post("/api/v1/encode", {"model": "cl100k_base", "inputs": ["fine", self.TEXT]})
        assert reply.status == 400
        error = reply.error
        assert error["code"] == "invalid_argument"
        assert (error["item"], error["token"], error["offset"]) == (1, "<|endoftext|>", 3)
        assert "allowed_special" in error["message"] and "inputs[1]" in error["message"]

    def test_count_uses_the_same_policy(self, client):
        reply = client.post("/api/v1/count", {"model": "o200k_base", "text": self.TEXT})
        assert reply.status == 400
        assert reply.error["token"] == "<|endoftext|>"

    @pytest.mark.parametrize(
        ("policy", "tiktoken_kwargs"),
        [
            ({"allowed_special": "all"}, {"allowed_special": "all"}),
            ({"allowed_special": ["<|endoftext|>"]}, {"allowed_special": {"<|endoftext|>"}}),
            ({"disallowed_special": []}, {"disallowed_special": ()}),
            ({"allowed_special": [], "disallowed_special": []}, {"allowed_special": set(), "disallowed_special": ()}),
        ],
        ids=["allowed-all", "allowed-listed", "ordinary", "explicit-none"],
    )
    @pytest.mark.parametrize("model", OPENAI_MODELS)
    def test_policy_matches_tiktoken(self, client, oracle, model, policy, tiktoken_kwargs):
        payload = client.post("/api/v1/encode", {"model": model, "text": self.TEXT, **policy}).json()
        assert payload["results"][0]["ids"] == oracle[model].encode(self.TEXT, **tiktoken_kwargs)

    def test_allowed_special_token_is_its_id(self, client):
        ids = client.post("/api/v1/encode", {"model": "cl100k_base", "text": "<|endoftext|>", "allowed_special": "all"})
        assert ids.json()["results"][0]["ids"] == [100257]  # cl100k_base's <|endoftext|>, from tiktoken

    def test_a_disallowed_list_names_only_those_tokens(self, client, oracle):
        text = "<|fim_prefix|> and <|endoftext|>"
        body = {"model": "cl100k_base", "text": text, "disallowed_special": ["<|endoftext|>"]}
        reply = client.post("/api/v1/encode", body)
        assert reply.status == 400
        assert (reply.error["token"], reply.error["offset"]) == ("<|endoftext|>", 19)

    def test_bad_policy_value_is_a_400_naming_the_field(self, client):
        reply = client.post("/api/v1/encode", {"model": "cl100k_base", "text": "x", "allowed_special": "some"})
        assert reply.status == 400
        assert "allowed_special" in reply.error["message"]


class TestBytesInput:
    def test_bytes_are_encoded_as_ordinary_text(self, client, oracle):
        data = "hello <|endoftext|>".encode()
        body = {"model": "cl100k_base", "inputs": [{"data": base64.b64encode(data).decode()}]}
        payload = client.post("/api/v1/encode", body).json()
        assert payload["results"][0]["ids"] == oracle["cl100k_base"].encode_ordinary("hello <|endoftext|>")

    def test_invalid_utf8_bytes_round_trip(self, client, oracle, registry):
        data = b"\xff\xfe broken \xe8\xaa"
        body = {"model": "o200k_base", "inputs": [{"data": base64.b64encode(data).decode()}]}
        ids = client.post("/api/v1/encode", body).json()["results"][0]["ids"]
        assert ids == registry.get_encoding("o200k_base").encode_bytes(data)
        assert oracle["o200k_base"].decode_bytes(ids) == data

    def test_bad_base64_names_the_item(self, client):
        reply = client.post("/api/v1/count", {"model": "o200k_base", "inputs": ["ok", {"data": "not base64!"}]})
        assert reply.status == 400
        assert reply.error["item"] == 1


class TestDecode:
    @pytest.mark.parametrize("model", OPENAI_MODELS)
    def test_decode_gives_tiktokens_text_and_bytes(self, client, oracle, model):
        batches = [oracle[model].encode(text) for text in TEXTS]
        texts = client.post("/api/v1/decode", {"model": model, "inputs": batches}).json()["results"]
        assert [result["text"] for result in texts] == TEXTS
        raw = client.post("/api/v1/decode", {"model": model, "inputs": batches, "output": "bytes"}).json()["results"]
        assert [base64.b64decode(result["data"]) for result in raw] == [text.encode() for text in TEXTS]

    def test_partial_utf8_is_replaced_by_default_and_an_error_when_strict(self, client, oracle):
        encoding = oracle["cl100k_base"]
        ids = encoding.encode("a") + [encoding.encode_single_token(b"\xaa")]  # b"a\xaa": invalid at byte 1
        replaced = client.post("/api/v1/decode", {"model": "cl100k_base", "ids": ids}).json()
        assert replaced["results"] == [{"text": "a\ufffd"}]
        strict = client.post("/api/v1/decode", {"model": "cl100k_base", "inputs": [[], ids], "errors": "strict"})
        assert strict.status == 400
        assert (strict.error["item"], strict.error["offset"]) == (1, 1)

    def test_unknown_token_id_is_a_400_naming_it(self, client):
        reply = client.post("/api/v1/decode", {"model": "cl100k_base", "inputs": [[1], [15339, 100264]]})
        assert reply.status == 400  # 100264 lies in cl100k_base's gap between ranks and special tokens
        assert (reply.error["item"], reply.error["token_id"]) == (1, 100264)

    @pytest.mark.parametrize("bad", [True, -1, 1.5, "7"])
    def test_non_integer_ids_are_rejected(self, client, bad):
        reply = client.post("/api/v1/decode", {"model": "cl100k_base", "ids": [15339, bad]})
        assert reply.status == 400
        assert "inputs[0][1]" in reply.error["message"]


class TestModels:
    def test_models_lists_the_registry(self, client, registry):
        payload = client.get("/api/v1/models").json()
        names = {model["name"] for model in payload["models"]}
        assert set(OPENAI_MODELS) <= names
        assert names == {summary.name for summary in registry.list_models()}
        for model in payload["models"]:
            assert model["latest_version"] == max(model["versions"])

    def test_one_model_describes_the_exact_version(self, client, oracle):
        payload = client.get("/api/v1/models/cl100k_base").json()
        assert payload["n_vocab"] == oracle["cl100k_base"].n_vocab == 100277
        assert set(payload["special_tokens"]) == oracle["cl100k_base"].special_tokens_set
        assert payload["eot_token"] == 100257
        assert len(payload["sha256"]) == 64

    @pytest.mark.parametrize("path", ["/api/v1/models/gpt-9", "/api/v1/models/cl100k_base@999"])
    def test_unknown_model_or_version_is_a_404_listing_what_exists(self, client, path):
        reply = client.get(path)
        assert reply.status == 404
        assert reply.error["code"] == "not_found"
        assert any("cl100k_base" in item for item in reply.error["available"])

    def test_encode_with_unknown_model_is_a_404(self, client):
        reply = client.post("/api/v1/encode", {"model": "gpt-9", "text": "x"})
        assert reply.status == 404
        assert reply.error["ref"] == "gpt-9"
        assert "cl100k_base" in reply.error["message"]


class TestBadRequests:
    @pytest.mark.parametrize(
        ("body", "says"),
        [
            (b"{not json", "not UTF-8 JSON"),
            (b"[1, 2]", "JSON object"),
            (b'{"model": "cl100k_base", "text": "x", "allowed_specials": "all"}', "allowed_specials"),
            (b'{"text": "x"}', '"model" is required'),
            (b'{"model": "cl100k_base", "text": "x", "inputs": ["y"]}', "exactly one of"),
            (b'{"model": "cl100k_base", "inputs": [17]}', "inputs[0]"),
            (b'{"model": "cl100k_base", "text": "x", "detail": "yes"}', '"detail"'),
        ],
    )
    def test_bad_body_is_a_400_that_says_what_is_wrong(self, client, body, says):
        reply = client.post("/api/v1/encode", body)
        assert reply.status == 400
        assert says in reply.error["message"]

    def test_get_on_a_post_endpoint_is_405(self, client):
        assert client.get("/api/v1/encode").status == 405

    def test_unknown_paths_are_404(self, client):
        assert client.get("/static/../../etc/passwd").status == 404
        assert client.post("/api/v1/tokenize", {}).status == 404

    def test_body_without_content_length_is_411(self, client):
        response = client.raw(
            b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
        )
        assert response.startswith(b"HTTP/1.1 411 ")

    def test_server_keeps_serving_after_errors(self, client, oracle):
        for _ in range(3):
            assert client.post("/api/v1/encode", b"\xff\xfe").status == 400
        reply = client.post("/api/v1/count", {"model": "cl100k_base", "text": "still here"})
        assert reply.json()["total"] == len(oracle["cl100k_base"].encode("still here"))


@pytest.fixture(scope="module")
def small(registry):
    """A playground with tiny limits: 64 bytes of input, 2 items, 16 bytes with per-token detail."""
    limits = PlaygroundLimits(max_request_bytes=64, max_batch_items=2, max_detail_bytes=16)
    with PlaygroundServer(registry, port=0, limits=limits) as server:
        yield JsonClient(server.url)


class TestLimits:
    def test_too_many_inputs_is_413_naming_the_limit(self, small):
        reply = small.post("/api/v1/count", {"model": "cl100k_base", "inputs": ["a", "b", "c"]})
        assert reply.status == 413
        assert (reply.error["limit"], reply.error["setting"]) == (2, "max_batch_items")

    def test_too_many_input_bytes_is_413(self, small):
        reply = small.post("/api/v1/encode", {"model": "cl100k_base", "inputs": ["é" * 20, "x" * 25]})  # 40 + 25 bytes
        assert reply.status == 413
        assert reply.error["setting"] == "max_request_bytes"
        at_limit = small.post("/api/v1/encode", {"model": "cl100k_base", "inputs": ["é" * 20, "x" * 24]})
        assert at_limit.status == 200

    def test_too_many_ids_to_decode_is_413(self, small):
        assert small.post("/api/v1/decode", {"model": "cl100k_base", "ids": [15339] * 17}).status == 413
        assert small.post("/api/v1/decode", {"model": "cl100k_base", "ids": [15339] * 16}).status == 200

    def test_detail_has_its_own_smaller_limit(self, small):
        body = {"model": "cl100k_base", "text": "x" * 17}
        assert small.post("/api/v1/encode", {**body, "detail": True}).error["setting"] == "max_detail_bytes"
        assert small.post("/api/v1/encode", body).status == 200

    def test_oversized_body_is_refused_before_it_is_read(self, small):
        limit = PlaygroundLimits(max_request_bytes=64).max_body_bytes
        response = small.raw(
            b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {limit + 1}\r\n\r\n".encode()
        )  # no body sent at all: the server must answer from the header alone
        assert response.startswith(b"HTTP/1.1 413 ")
        assert b'"setting":"max_request_bytes"' in response


class TestPage:
    def test_page_and_assets_are_served_with_a_strict_content_security_policy(self, client):
        page = client.get("/")
        assert page.status == 200
        assert page.headers["Content-Type"].startswith("text/html")
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        html = page.body.decode()
        for name in ("token_view.js", "playground.js", "budgets.js", "chat.js"):
            assert f'<script src="/static/{name}"' in html
        assert html.count("<script") == html.count('<script src="/static/') == 4  # no inline script anywhere
        for path, kind in [("/static/token_view.js", "text/javascript"),
                           ("/static/playground.js", "text/javascript"), ("/static/playground.css", "text/css"),
                           ("/static/budgets.js", "text/javascript"), ("/static/budgets.css", "text/css"),
                           ("/static/chat.js", "text/javascript"), ("/static/chat.css", "text/css")]:
            asset = client.get(path)
            assert asset.status == 200 and asset.headers["Content-Type"].startswith(kind)

    @pytest.mark.parametrize("path", ["/static/token_view.js", "/static/playground.js", "/static/budgets.js", "/static/chat.js"])
    def test_the_scripts_never_write_html(self, client, path):
        script = client.get(path).body.decode()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script

    def test_health(self, client):
        assert client.get("/healthz").body == b"ok\n"
