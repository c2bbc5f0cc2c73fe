"""`openai-chat` against the rule of OpenAI's cookbook, computed with tiktoken.

The oracle is the cookbook's `num_tokens_from_messages` ("How to count tokens with tiktoken",
github.com/openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb), copied below with
its per-model constants for the models tokend's encodings serve (cl100k_base, o200k_base).
"""

from __future__ import annotations

import pytest
import tiktoken

import tokend
from chat.conversations import CONVERSATIONS, conversation, uses
from tokend.errors import ChatRequestError
from tokend.registry import default_registry
from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format


def num_tokens_from_messages(messages, model="gpt-4o-mini-2024-07-18"):
    """Return the number of tokens used by a list of messages. (OpenAI cookbook, verbatim but for print)"""
    try:
        encoding = tiktoken.encoding_for_model(model)
    except KeyError:
        encoding = tiktoken.get_encoding("o200k_base")
    if model in {
        "gpt-3.5-turbo-0125",
        "gpt-4-0314",
        "gpt-4-32k-0314",
        "gpt-4-0613",
        "gpt-4-32k-0613",
        "gpt-4o-mini-2024-07-18",
        "gpt-4o-2024-08-06",
    }:
        tokens_per_message = 3
        tokens_per_name = 1
    else:
        raise NotImplementedError(f"num_tokens_from_messages() is not implemented for model {model}.")
    num_tokens = 0
    for message in messages:
        num_tokens += tokens_per_message
        for key, value in message.items():
            num_tokens += len(encoding.encode(value))
            if key == "name":
                num_tokens += tokens_per_name
    num_tokens += 3  # every reply is primed with <|start|>assistant<|message|>
    return num_tokens


MODELS = {"cl100k_base": "gpt-4-0613", "o200k_base": "gpt-4o-2024-08-06"}


def _as_cookbook_takes_it(messages):
    """The documented mapping: text parts joined with "\\n" (the cookbook only takes strings)."""
    for message in messages:
        if isinstance(message.get("content"), list):
            message["content"] = "\n".join(part["text"] for part in message["content"])
    return messages


@pytest.mark.parametrize("name", sorted(CONVERSATIONS))
@pytest.mark.parametrize("encoding_name", sorted(MODELS))
def test_count_equals_the_cookbook(encoding_name, name):
    # The embedded registry's latest version carries the format: counting works out of the box.
    encoder = default_registry().load(encoding_name).chat
    messages, tools = conversation(name)
    if uses(name) & {"tools", "tool_calls", "tool_role"}:
        with pytest.raises(ChatRequestError, match="openai-chat"):
            encoder.count_chat(messages, tools)
        return
    count = encoder.count_chat(messages)
    assert count.estimate
    assert count.total == num_tokens_from_messages(_as_cookbook_takes_it(conversation(name)[0]), MODELS[encoding_name])
    assert count.format_overhead == 3
    without_reply = encoder.count_chat(messages, add_generation_prompt=False)
    assert without_reply.total == count.total - 3


def test_encode_is_refused_because_the_layout_is_not_published():
    encoder = ChatEncoder(tokend.get_encoding("cl100k_base"), build_chat_format(builtin_chat_format("openai-chat")))
    with pytest.raises(ChatRequestError, match="use count_chat"):
        encoder.encode_chat([{"role": "user", "content": "hi"}])
