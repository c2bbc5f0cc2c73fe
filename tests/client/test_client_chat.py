"""`encode_chat` / `count_chat`: the local LoadedModel and the remote encodings (blocking and asyncio) held
to one suite — the same results, and for a chat that is refused the same exception class, field, message
index and text. The local results are tests/chat's business (held to the reference renderers); here the
remote ones must equal them, over a real `tokend serve` on the same registry."""

from __future__ import annotations

import dataclasses
import time

import pytest
from client_async_facade import BlockingFacade

import tokend_client
from support.chat_models import CONVERSATIONS, build_chat_registry
from support.server import TokendServer
from tokend.registry import Registry

IMPLEMENTATIONS = ["local", "remote", "remote-async"]
MODELS = ["chatml", "templated", "o200k_base"]
PART = {"type": "text", "text": "part"}
# name -> (messages, tools, keyword arguments): what a caller may send, right or wrong.
CALLS = {
    **{name: (messages, tools, {}) for name, (messages, tools) in CONVERSATIONS.items()},
    "no_generation_prompt": ([{"role": "user", "content": "Hi"}], None, {"add_generation_prompt": False}),
    "object_arguments": ([{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "f", "arguments": {"deep": [1, {"x": "é"}]}}}]}], None, {}),
    "name_and_extra_key": ([{"role": "user", "content": "Hi", "name": "ann"},
                            {"role": "assistant", "content": "yo", "reasoning_content": "think"}], None, {}),
    "refuse_special_text": (CONVERSATIONS["special_text_in_content"][0], None, {"content_special_tokens": "refuse"}),
    "text_special_text": (CONVERSATIONS["special_text_in_content"][0], None, {"content_special_tokens": "text"}),
    "robot_role": ([{"role": "user", "content": "ok"}, {"role": "robot", "content": "beep"}], None, {}),
    "empty_function_name": ([{"role": "assistant", "tool_calls": [{"function": {"name": "", "arguments": "{}"}}]}], None, {}),
    "content_is_an_object": ([{"role": "user", "content": {"text": "hi"}}], None, {}),
    "image_part": ([{"role": "user", "content": [PART, {"type": "image_url", "image_url": {"url": "x"}}]}], None, {}),
    "name_is_null": ([{"role": "user", "content": "Hi", "name": None}], None, {}),
    "role_missing": ([{"content": "Hi"}], None, {}),
    "messages_not_a_list": ("Hi", None, {}),
    "message_not_an_object": (["Hi"], None, {}),
    "tools_not_a_list": ([{"role": "user", "content": "Hi"}], {"type": "function"}, {}),
    "generation_prompt_not_bool": ([{"role": "user", "content": "Hi"}], None, {"add_generation_prompt": "yes"}),
    "unknown_content_rule": ([{"role": "user", "content": "Hi"}], None, {"content_special_tokens": "maybe"}),
    "template_raises": ([{"role": "robot", "content": "beep"}], None, {}),
}


@pytest.fixture(scope="module")
def chat_registry(tmp_path_factory):
    return build_chat_registry(tmp_path_factory.mktemp("chat") / "registry")


@pytest.fixture(scope="module")
def chat_server(chat_registry):
    started = TokendServer(registry=chat_registry, metrics=False).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def implementations(request, chat_registry, chat_server, async_runner):
    """(implementation, model) -> an object with encode_chat / count_chat."""
    local = Registry.open(chat_registry)
    client = tokend_client.TokendClient(chat_server.target, timeout=30)
    async_client = async_runner.run(_open_async(chat_server.target))
    built = {}

    def get(implementation, model):
        if (implementation, model) not in built:
            if implementation == "local":
                built[implementation, model] = local.load(model)
            elif implementation == "remote":
                built[implementation, model] = client.get_encoding(model)
            else:
                encoding = async_runner.run(async_client.get_encoding(model))
                built[implementation, model] = BlockingFacade(encoding, async_runner)
        return built[implementation, model]

    yield get
    client.close()
    async_runner.run(async_client.close())


async def _open_async(target):
    return tokend_client.AsyncTokendClient(target, timeout=30)


def _outcome(call, *args, **kwargs):
    try:
        result = call(*args, **kwargs)
    except (ValueError, tokend_client.TokendError) as error:
        return ("error", type(error).__name__, getattr(error, "field", None), getattr(error, "message_index", None),
                getattr(error, "reason", None), str(error))  # fmt: skip
    return ("ok", type(result).__name__, dataclasses.astuple(result))


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("operation", ["encode_chat", "count_chat"])
def test_remote_chat_is_the_local_chat(implementations, operation, model, call):
    messages, tools, options = CALLS[call]
    outcomes = {
        implementation: _outcome(getattr(implementations(implementation, model), operation), messages, tools, **options)
        for implementation in IMPLEMENTATIONS
    }
    assert outcomes["remote"] == outcomes["local"]
    assert outcomes["remote-async"] == outcomes["local"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_per_message_false_and_the_estimate(implementations, implementation):
    messages = CONVERSATIONS["system_and_turns"][0]
    count = implementations(implementation, "o200k_base").count_chat(messages, per_message=False)
    assert (count.per_message, count.estimate) == ([], True)
    assert count.total == implementations("local", "o200k_base").count_chat(messages).total


@pytest.mark.parametrize("implementation", ["remote", "remote-async"])
def test_a_template_time_limit_is_raised_once_not_split_and_retried(implementations, implementation):
    encoding = implementations(implementation, "templated")
    started = time.monotonic()
    with pytest.raises(tokend_client.ChatTemplateError) as raised:
        encoding.count_chat([{"role": "user", "content": "spin"}])
    assert raised.value.reason == "time_limit" and raised.value.code.name == "RESOURCE_EXHAUSTED"
    assert "longer than 1 s" in str(raised.value) and time.monotonic() - started < 10


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("message", [{"role": "user", "content": "a\ud800b"},
                                     {"role": "user", "content": [{"type": "text", "text": "x\udc00"}]}])
def test_a_lone_surrogate_raises_chat_request_error_locally_and_remotely(implementations, implementation, message):
    """The same class everywhere: the local model's message check, and the client before anything is sent
    (protobuf strings are UTF-8: it raised a bare UnicodeEncodeError)."""
    with pytest.raises(ValueError) as raised:
        implementations(implementation, "chatml").count_chat([message])
    assert type(raised.value).__name__ == "ChatRequestError", repr(raised.value)
    assert raised.value.field.startswith("messages[0].content") and "lone surrogate" in str(raised.value)


def test_a_model_without_a_chat_format_raises_chat_format_not_set(chat_server, chat_registry):
    with tokend_client.TokendClient(chat_server.target, timeout=30) as client:
        with pytest.raises(tokend_client.ChatFormatNotSetError) as raised:
            client.get_encoding("plain").count_chat([{"role": "user", "content": "Hi"}])
    assert raised.value.ref == "plain@1" and isinstance(raised.value, ValueError)
    assert raised.value.code.name == "FAILED_PRECONDITION"


def test_get_model_names_the_chat_format(chat_server):
    with tokend_client.TokendClient(chat_server.target, timeout=30) as client:
        assert client.get_model("plain").chat_format is None
        chat_format = client.get_model("o200k_base").chat_format
    assert isinstance(chat_format, tokend_client.ChatFormatDetails)
    assert (chat_format.name, chat_format.kind, chat_format.estimate) == ("openai-chat", "builtin", True)
