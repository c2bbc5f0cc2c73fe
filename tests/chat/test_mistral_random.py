"""Seeded random conversations through the service layer (`TokenizerService.encode_chat` / `count_chat`) on
every mistral-common tokenizer file, imported into a registry with its `mistral` chat format, against
mistral-common 1.13.1's `encode_chat_completion`: system messages (also several, also empty parts), users,
assistants, tool calls (arguments as JSON text or objects) and their results, tool definitions; contents from
tests/support/random_texts.py (special-token text included: it stays text). Conversations mistral-common's
validator refuses are left out (tokend renders some of them: test_mistral.py)."""

from __future__ import annotations

import copy
import json
import random

import pytest
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from chat.mistral_files import DATA, MISTRAL_FILES
from support.random_texts import short_text
from tokend.registry import Registry, builtin_chat_format
from tokend.registry.importing import import_files
from tokend.service import ChatConversation, Limits, ServedModels, TokenizerService

_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    registry = Registry.open(tmp_path_factory.mktemp("mistral-random") / "models", create=True)
    for index, (file_name, (version, _)) in enumerate(sorted(MISTRAL_FILES.items())):
        import_files(registry, [DATA / file_name], name=f"mistral-{index}", provenance={"kind": "imported"},
                     chat_format=builtin_chat_format("mistral", version=version))
    return TokenizerService(ServedModels(registry), Limits())


def _content(rng: random.Random):
    draw = rng.random()
    if draw < 0.05:
        return ""
    if draw < 0.12:
        return [{"type": "text", "text": short_text(rng, 6) if rng.random() < 0.8 else ""} for _ in range(rng.randrange(1, 4))]
    return short_text(rng, 10)


def _value(rng: random.Random, depth: int = 0):
    draw = rng.random()
    if depth < 2 and draw < 0.2:
        return {short_text(rng, 2, special=False) or "k": _value(rng, depth + 1) for _ in range(rng.randrange(0, 3))}
    if depth < 2 and draw < 0.3:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 3))]
    if draw < 0.4:
        return rng.choice([0, 1, -5, 3.25, 1e20, True, False, None])
    return short_text(rng, 4)


def _tool(rng: random.Random) -> dict:
    function = {"name": rng.choice(["get_weather", "search", "now", "tool_" + "".join(rng.choices(_ALPHANUMERIC, k=5))])}
    if rng.random() < 0.8:
        function["description"] = short_text(rng, 5)
    if rng.random() < 0.8:
        function["parameters"] = {"type": "object", "properties": {
            f"{short_text(rng, 1, special=False).strip() or 'p'}{i}": {"type": rng.choice(["string", "integer", "boolean"]),
                                                                      "description": short_text(rng, 3)}
            for i in range(rng.randrange(0, 4))}}
    return {"type": "function", "function": function}


def random_conversation(rng: random.Random, *, with_tools: bool) -> tuple[list[dict], list[dict] | None]:
    tools = [_tool(rng) for _ in range(rng.randrange(1, 4))] if with_tools and rng.random() < 0.4 else None
    names = [tool["function"]["name"] for tool in tools] if tools else ["get_weather"]
    messages = [{"role": "system", "content": _content(rng)}] if rng.random() < 0.4 else []
    for _ in range(rng.randrange(1, 5)):
        if rng.random() < 0.1:
            messages.append({"role": "system", "content": _content(rng)})
        messages.append({"role": "user", "content": _content(rng)})
        if with_tools and rng.random() < 0.3:
            calls = []
            for _ in range(rng.randrange(1, 3)):
                arguments = {short_text(rng, 1, special=False).strip() or "a": _value(rng) for _ in range(rng.randrange(0, 3))}
                calls.append({"id": "".join(rng.choices(_ALPHANUMERIC, k=9)), "type": "function", "function": {
                    "name": rng.choice(names),
                    "arguments": json.dumps(arguments, ensure_ascii=rng.random() < 0.5) if rng.random() < 0.7 else arguments}})
            messages.append({"role": "assistant", "content": None if rng.random() < 0.7 else "", "tool_calls": calls})
            for call in calls:
                messages.append({"role": "tool", "tool_call_id": call["id"], "name": call["function"]["name"],
                                 "content": short_text(rng, 6) if rng.random() < 0.7 else json.dumps(_value(rng))})
            if rng.random() < 0.5:
                continue
        messages.append({"role": "assistant", "content": _content(rng)})
    if rng.random() < 0.6 and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
        messages.append({"role": "user", "content": _content(rng)})
    return messages, tools


def _reference(file_name: str, messages, tools) -> list[int] | None:
    mode = ValidationMode.finetuning if messages[-1]["role"] == "assistant" else ValidationMode.test
    request = ChatCompletionRequest.from_openai(messages=copy.deepcopy(messages), tools=copy.deepcopy(tools))
    try:
        return _tokenizer(file_name, mode).encode_chat_completion(request).tokens
    except Exception:  # mistral-common's validator refuses it
        return None


_TOKENIZERS: dict = {}


def _tokenizer(file_name: str, mode: ValidationMode) -> MistralTokenizer:
    if (file_name, mode) not in _TOKENIZERS:
        _TOKENIZERS[file_name, mode] = MistralTokenizer.from_file(str(DATA / file_name), mode=mode)
    return _TOKENIZERS[file_name, mode]


@pytest.mark.parametrize("file_name", sorted(MISTRAL_FILES))
def test_random_conversations_give_mistral_commons_ids(file_name, service):
    version, _ = MISTRAL_FILES[file_name]
    model = f"mistral-{sorted(MISTRAL_FILES).index(file_name)}"
    rng = random.Random(f"mistral-{file_name}")
    compared, mismatches = 0, []
    while compared < 300:
        messages, tools = random_conversation(rng, with_tools=version != "v1")
        expected = _reference(file_name, messages, tools)
        if expected is None:
            continue
        conversation = ChatConversation(copy.deepcopy(messages), copy.deepcopy(tools))
        ids = service.encode_chat(model, [conversation]).results[0].ids
        total = service.count_chat(model, [conversation]).results[0].total
        if ids != expected or total != len(expected):
            mismatches.append(json.dumps([messages, tools], ensure_ascii=False)[:400])
        compared += 1
    assert mismatches == []
