"""The playground's chat endpoints over a real HTTP server: requests reach the service's chat operations
(the answers are the registry's LoadedModel results) and every failure kind has its HTTP status."""

from __future__ import annotations

import pytest

from support.chat_models import CONVERSATIONS, build_chat_registry
from tokend.playground import PlaygroundServer
from tokend.registry import Registry

from .json_client import JsonClient


@pytest.fixture(scope="module")
def chat_registry(tmp_path_factory):
    return Registry.open(build_chat_registry(tmp_path_factory.mktemp("chat") / "registry"))


@pytest.fixture(scope="module")
def chat_client(chat_registry):
    with PlaygroundServer(chat_registry, host="127.0.0.1", port=0) as server:
        yield JsonClient(server.url)


def test_encode_chat_with_detail_is_the_models_encoding(chat_client, chat_registry):
    messages, tools = CONVERSATIONS["tool_call"]
    reply = chat_client.post("/api/v1/encode_chat", {"model": "chatml", "messages": messages, "tools": tools, "detail": True})
    assert reply.status == 200, reply.body
    payload = reply.json()
    expected = chat_registry.load("chatml").encode_chat(messages, tools)
    result = payload["results"][0]
    assert (result["ids"], result["text"], result["spans_exact"]) == (expected.ids, expected.text, expected.spans_exact)
    assert [tuple(span) for span in result["message_spans"]] == expected.message_spans
    assert [token["id"] for token in result["tokens"]] == expected.ids
    assert sum(token["special"] for token in result["tokens"]) == expected.text.count("<|im_")
    assert payload["model"] == {"name": "chatml", "version": 1} and payload["total_tokens"] == len(expected.ids)


def test_count_chat_of_several_conversations(chat_client, chat_registry):
    conversations = [{"messages": CONVERSATIONS[name][0]} for name in ("short", "system_and_turns")]
    conversations[1]["add_generation_prompt"] = False
    payload = chat_client.post("/api/v1/count_chat", {"model": "chatml", "conversations": conversations}).json()
    model = chat_registry.load("chatml")
    expected = [model.count_chat(CONVERSATIONS["short"][0]), model.count_chat(CONVERSATIONS["system_and_turns"][0], add_generation_prompt=False)]
    assert [(r["total"], r["per_message"]) for r in payload["results"]] == [(e.total, e.per_message) for e in expected]
    assert payload["total"] == sum(e.total for e in expected)
    estimate = chat_client.post("/api/v1/count_chat", {"model": "o200k_base", "messages": CONVERSATIONS["short"][0], "per_message": False}).json()
    assert estimate["results"][0]["estimate"] and estimate["results"][0]["per_message"] == []


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "says"),
    [
        ("/api/v1/count_chat", {"model": "chatml", "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_argument",
         "conversations[0].messages[0].role: role 'robot'"),
        ("/api/v1/encode_chat", {"model": "templated", "messages": [{"role": "robot", "content": "x"}]}, 400, "invalid_argument",
         "robots may not speak: x"),
        ("/api/v1/count_chat", {"model": "templated", "messages": [{"role": "user", "content": "grow"}]}, 413, "resource_exhausted",
         "limit 16,777,216"),
        ("/api/v1/count_chat", {"model": "plain", "messages": [{"role": "user", "content": "x"}]}, 422, "failed_precondition",
         "plain@1 has no chat format"),
        ("/api/v1/encode_chat", {"model": "o200k_base", "messages": [{"role": "user", "content": "x"}]}, 400, "invalid_argument",
         "no ids: use count_chat"),
        ("/api/v1/count_chat", {"model": "chatml", "messages": [], "conversations": []}, 400, "invalid_argument", "exactly one of"),
        ("/api/v1/count_chat", {"model": "chatml", "conversations": [{"messages": [], "colour": 1}]}, 400, "invalid_argument",
         "conversations[0] must be an object"),
        ("/api/v1/encode_chat", {"model": "chatml", "messages": [], "per_message": True}, 400, "invalid_argument", "unknown field(s) per_message"),
        ("/api/v1/count_chat", {"model": "chatml", "messages": [], "content_special_tokens": "maybe"}, 400, "invalid_argument",
         "content_special_tokens: unknown value 'maybe'"),
    ],
)
def test_failures_have_their_status(chat_client, path, body, status, code, says):
    reply = chat_client.post(path, body)
    assert (reply.status, reply.error["code"]) == (status, code), reply.body
    assert says in reply.error["message"]


def test_model_details_name_the_chat_format(chat_client):
    formats = {ref: chat_client.get(f"/api/v1/models/{ref}").json()["chat_format"] for ref in ("chatml", "templated", "o200k_base", "plain")}
    assert formats["plain"] is None
    summary = {ref: (value["name"], value["kind"], value["estimate"]) for ref, value in formats.items() if value is not None}
    assert summary == {"chatml": ("chatml", "builtin", False), "templated": ("template", "template", False),
                       "o200k_base": ("openai-chat", "builtin", True)}  # fmt: skip
    assert formats["templated"]["description"].startswith("template (sha256 ") and formats["chatml"]["description"] == "chatml"


def test_the_field_of_a_refusal_is_in_the_body(chat_client):
    bad = {"model": "chatml", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}]}
    error = chat_client.post("/api/v1/count_chat", bad).error
    assert (error["item"], error["message_index"], error["field"]) == (0, 1, "messages[1].tool_calls[0].function.name")
