"""The harmony oracle: OpenAI-shaped conversations as openai-harmony objects, rendered by openai-harmony.

The mapping is the one documented in tokend.registry.chat.harmony, written here again against
openai-harmony's own classes (SystemContent, DeveloperContent, ToolDescription, Message, Author), so the
test compares tokend's renderer with the reference renderer, not with itself.
"""

from __future__ import annotations

import json
from functools import lru_cache

import openai_harmony as harmony


@lru_cache(maxsize=1)
def harmony_encoding():
    # tests/conftest.py points TIKTOKEN_ENCODINGS_BASE at the o200k_base rank file (offline).
    return harmony.load_harmony_encoding(harmony.HarmonyEncodingName.HARMONY_GPT_OSS)


def _text(content) -> list[str]:
    if content is None:
        return []
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content]


def to_harmony(messages: list[dict], tools: list[dict] | None, **system_options) -> harmony.Conversation:
    system = harmony.SystemContent.new()
    for key, value in system_options.items():
        setattr(system, key, value)
    converted = [harmony.Message.from_role_and_content(harmony.Role.SYSTEM, system)]
    rest = messages
    developer = None
    if messages and messages[0]["role"] in ("system", "developer"):
        developer = harmony.DeveloperContent.new().with_instructions("\n".join(_text(messages[0]["content"])))
        rest = messages[1:]
    if tools:
        developer = developer or harmony.DeveloperContent.new()
        developer = developer.with_function_tools(
            [
                harmony.ToolDescription.new(
                    tool["function"]["name"], tool["function"].get("description") or "", tool["function"].get("parameters")
                )
                for tool in tools
            ]
        )
    if developer is not None:
        converted.append(harmony.Message.from_role_and_content(harmony.Role.DEVELOPER, developer))
    call_names = {}
    for message in rest:
        role = message["role"]
        contents = [harmony.TextContent(text=text) for text in _text(message.get("content"))]
        author = harmony.Author(role=harmony.Role(role) if role != "tool" else harmony.Role.TOOL, name=message.get("name"))
        if role == "user":
            converted.append(harmony.Message(author=author, content=contents))
        elif role == "assistant" and not message.get("tool_calls"):
            converted.append(harmony.Message(author=author, content=contents, channel="final"))
        elif role == "assistant":
            if "".join(_text(message.get("content"))):
                converted.append(harmony.Message(author=author, content=contents, channel="commentary"))
            for call in message["tool_calls"]:
                arguments = call["function"]["arguments"]
                if not isinstance(arguments, str):
                    arguments = json.dumps(arguments, ensure_ascii=False)
                call_names[call.get("id")] = call["function"]["name"]
                converted.append(
                    harmony.Message(
                        author=author,
                        content=[harmony.TextContent(text=arguments)],
                        channel="commentary",
                        recipient=f"functions.{call['function']['name']}",
                        content_type="<|constrain|>json",
                    )
                )
        else:
            name = message.get("name") or call_names[message.get("tool_call_id")]
            converted.append(
                harmony.Message(
                    author=harmony.Author(role=harmony.Role.TOOL, name=f"functions.{name}"),
                    content=contents,
                    channel="commentary",
                    recipient="assistant",
                )
            )
    return harmony.Conversation.from_messages(converted)


def render(messages, tools, add_generation_prompt: bool, **system_options) -> list[int]:
    conversation = to_harmony(messages, tools, **system_options)
    encoding = harmony_encoding()
    if add_generation_prompt:
        return encoding.render_conversation_for_completion(conversation, harmony.Role.ASSISTANT)
    return encoding.render_conversation(conversation)
