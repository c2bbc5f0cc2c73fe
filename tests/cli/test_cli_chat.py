"""`tokend encode|count --chat` and chat formats on `tokend registry import|chat-format`, run as a user would
(the console script in a subprocess, real registry directories). The ids are the registry's own
(LoadedModel.encode_chat, held to the reference renderers in tests/chat); counts on the embedded registry
are checked against OpenAI's cookbook function."""

from __future__ import annotations

import json

import pytest

from chat.test_openai_chat import num_tokens_from_messages
from support.chat_models import CHATML_SPECIALS, CONVERSATIONS, TEMPLATE, build_chat_registry
from support.registries import openai_rank_file
from tokend.registry import Registry

from .test_cli import fails, ok

CHAT = {"messages": CONVERSATIONS["system_and_turns"][0][:3]}


@pytest.fixture(scope="module")
def chat_registry(tmp_path_factory):
    return build_chat_registry(tmp_path_factory.mktemp("chat") / "registry")


def test_count_chat_works_out_of_the_box_on_the_embedded_registry():
    total = ok("count", "--chat", "--model", "o200k_base", stdin=json.dumps(CHAT))
    assert int(total) == num_tokens_from_messages(CHAT["messages"], "gpt-4o-2024-08-06")
    per_message = json.loads(ok("count", "--chat", "--model", "cl100k_base", "--json", stdin=json.dumps(CHAT)))
    assert per_message["estimate"] and per_message["total"] == num_tokens_from_messages(CHAT["messages"], "gpt-4-0613")
    assert len(per_message["per_message"]) == 3


def test_encode_chat_prints_the_ids_and_with_json_the_text_and_spans(chat_registry):
    messages, tools = CONVERSATIONS["tool_call"]
    request = json.dumps({"messages": messages, "tools": tools, "add_generation_prompt": False})
    expected = Registry.open(chat_registry).load("chatml").encode_chat(messages, tools, add_generation_prompt=False)
    assert json.loads(ok("encode", "--chat", "--model", "chatml", "--registry", str(chat_registry), stdin=request)) == expected.ids
    whole = json.loads(ok("encode", "--chat", "--json", "--model", "chatml", "--registry", str(chat_registry), "--text", request))
    assert (whole["text"], [tuple(span) for span in whole["message_spans"]]) == (expected.text, expected.message_spans)


def test_chat_errors_name_the_field_and_the_fix(chat_registry):
    robot = json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "robot", "content": "beep"}]})
    stderr = fails(1, "count", "--chat", "--model", "chatml", "--registry", str(chat_registry), stdin=robot)
    assert stderr.startswith("tokend: error: messages[1].role: role 'robot' is not one of system, user, assistant, tool")
    stderr = fails(1, "count", "--chat", "--model", "plain", "--registry", str(chat_registry), stdin=json.dumps(CHAT))
    assert "plain@1 has no chat format" in stderr and "tokend registry chat-format plain@1 --chat-format NAME" in stderr
    assert "the chat is not JSON" in fails(2, "count", "--chat", "--model", "chatml", "--registry", str(chat_registry), stdin="[")
    assert "--content-special-tokens" in fails(2, "encode", "--chat", "--ordinary", "--model", "chatml", stdin="{}")


def test_import_with_a_chat_format_then_new_versions_with_other_formats(tmp_path):
    ranks = tmp_path / "cl100k_base.tiktoken.gz"
    ranks.write_bytes(openai_rank_file("cl100k_base"))
    registry = tmp_path / "models"
    specials = [f"{token}={token_id}" for token, token_id in CHATML_SPECIALS.items()]
    common = ("--registry", str(registry))
    out = ok("registry", "import", str(ranks), "--name", "gpt35", "--like", "cl100k_base", "--special", *specials,
             "--chat-format", "chatml", "--chat-option", "enable_thinking=false", *common)  # fmt: skip
    assert "as gpt35@1" in out
    manifest = Registry.open(registry).manifest("gpt35@1")
    assert manifest.chat_format.name == "chatml" and manifest.chat_format.options == {"enable_thinking": False}

    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": [{"name": "default", "template": "{{ bos_token }}"},
                                                    {"name": "tool_use", "template": TEMPLATE}],
                                  "eos_token": {"content": "<|im_end|>"}}))  # fmt: skip
    out = ok("registry", "chat-format", "gpt35@1", "--chat-template", str(config), "--chat-template-name", "tool_use", *common)
    assert out.startswith("published gpt35@2 (template (sha256") and "the payload of gpt35@1" in out
    template_file = tmp_path / "chat.jinja"
    template_file.write_text(TEMPLATE)
    ok("registry", "chat-format", "gpt35@1", "--chat-template", str(template_file), "--chat-variable", "eos_token=<|im_end|>", *common)
    ok("registry", "chat-format", "gpt35", "--none", *common)
    opened = Registry.open(registry)
    second, third = opened.manifest("gpt35@2").chat_format, opened.manifest("gpt35@3").chat_format
    assert second.template == TEMPLATE and second.variables == {"eos_token": "<|im_end|>"} and "tokenizer_config.json" in second.source
    assert (third.template, third.variables, third.source) == (TEMPLATE, {"eos_token": "<|im_end|>"}, "chat.jinja")
    assert opened.manifest("gpt35@4").chat_format is None
    assert len({opened.manifest(f"gpt35@{version}").payload.sha256 for version in (1, 2, 3, 4)}) == 1
    messages = CONVERSATIONS["short"][0]
    assert json.loads(ok("encode", "--chat", "--model", "gpt35@3", *common, stdin=json.dumps({"messages": messages}))) == \
        opened.load("gpt35@3").encode_chat(messages).ids

    assert "give one of --chat-format NAME, --chat-template FILE or --none" in fails(2, "registry", "chat-format", "gpt35", *common)
    assert "unknown harmony options ['colour']" in fails(1, "registry", "chat-format", "gpt35", "--chat-format", "harmony",
                                                          "--chat-option", "colour=red", *common)  # fmt: skip
    assert "--chat-variable goes with" not in fails(2, "registry", "chat-format", "gpt35", "--chat-format", "chatml",
                                                     "--chat-variable", "x=1", *common)  # fmt: skip


def test_registry_show_names_the_chat_format_and_the_shared_payload():
    manifest = json.loads(ok("registry", "show", "cl100k_base"))
    assert (manifest["version"], manifest["chat_format"]["name"]) == (2, "openai-chat")
    assert manifest["payload"]["shared_with"] == "cl100k_base@1"  # no second copy of the ranks
    assert json.loads(ok("registry", "show", "cl100k_base@1"))["chat_format"] is None
