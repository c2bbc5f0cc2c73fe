"""OpenAI-shaped chats ⇄ the ``ChatConversation`` message (both directions, for the client and the server).

A message dict travels key by key: each key whose value the typed fields carry exactly (``role`` text,
``content`` as text / text parts / null, ``name``, ``tool_calls`` of functions, ``tool_call_id``) goes in
them; every other key — and a known key with a value they cannot carry (``"name": None``, a part with
extra keys, an ``id`` that is not text) — goes in ``extra_json``. The server rebuilds the same dict and the
chat format checks it, so a remote call refuses exactly what a local one refuses, with the same field.
Tools travel as JSON text. Only values JSON can hold cross the wire.

    >>> message = conversation_to_message([{"role": "user", "content": "Hi"}], None, True)
    >>> conversation_from_message(message)
    ([{'role': 'user', 'content': 'Hi'}], None, True)

Rebuilt dicts have the typed keys first (role, content, name, tool_calls, tool_call_id), then the others in
their order: key order is not kept (no chat format depends on it). Part keys other than ``type`` and
``text`` are not carried (only text parts can be tokenized); nor are tool-call keys other than ``id``,
``type`` and ``function`` (``name``, ``arguments``), which then travel whole in ``extra_json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from tokend_api.v1 import tokenizer_pb2 as pb

__all__ = ["ChatMessageError", "conversation_to_message", "conversation_from_message", "CONTENT_SPECIAL_TOKENS_VALUES"]

# ContentSpecialTokens ⇄ the Python argument (`content_special_tokens=`).
CONTENT_SPECIAL_TOKENS_VALUES = {
    pb.CONTENT_SPECIAL_TOKENS_UNSPECIFIED: "reference",
    pb.CONTENT_SPECIAL_TOKENS_REFERENCE: "reference",
    pb.CONTENT_SPECIAL_TOKENS_TEXT: "text",
    pb.CONTENT_SPECIAL_TOKENS_REFUSE: "refuse",
}
_TYPED_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


class ChatMessageError(ValueError):
    """A chat that cannot be sent or read: ``field`` names it (``messages[2].content``), as the chat formats do."""

    def __init__(self, field: str, problem: str, *, message_index: int | None = None) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.message_index = message_index


# -- to the wire (the client) -----------------------------------------------------------------------------


def conversation_to_message(messages: Any, tools: Any, add_generation_prompt: Any) -> pb.ChatConversation:
    """One conversation as the message; ChatMessageError for what JSON cannot hold."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ChatMessageError("messages", f"must be a list of message objects, got {type(messages).__name__}")
    if not isinstance(add_generation_prompt, bool):
        raise ChatMessageError("add_generation_prompt", f"must be true or false, got {add_generation_prompt!r}")
    conversation = pb.ChatConversation(add_generation_prompt=add_generation_prompt)
    for index, message in enumerate(messages):
        conversation.messages.append(_message(index, message))
    if tools is not None:
        conversation.tools_json = _json(tools, "tools", None)
    return conversation


def _message(index: int, message: Any) -> pb.ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ChatMessageError(where, f"must be an object with a role, got {type(message).__name__}", message_index=index)
    result = pb.ChatMessage()
    extra: dict[str, Any] = {}
    for key, value in message.items():
        if not isinstance(key, str):
            raise ChatMessageError(where, f"keys must be strings, got {key!r}", message_index=index)
        try:
            typed = _set_typed(result, key, value)
        except UnicodeEncodeError as error:  # a lone surrogate: protobuf strings are UTF-8, as is the server's reading
            character = error.object[error.start] if isinstance(error.object, str) else "?"
            raise ChatMessageError(
                f"{where}.{key[:100]}",
                f"holds a lone surrogate (U+{ord(character):04X}), which is not Unicode text; send the text as UTF-8",
                message_index=index,
            ) from None
        if not typed:
            extra[key] = value
    if extra:
        result.extra_json = _json(extra, where, index)
    return result


def _set_typed(result: pb.ChatMessage, key: str, value: Any) -> bool:
    """Put `key` in its typed field when that field carries `value` exactly; False otherwise."""
    if key == "role" and isinstance(value, str):
        result.role = value
    elif key == "content":
        if value is None:
            result.null_content = struct_pb2.NULL_VALUE
        elif isinstance(value, str):
            result.text = value
        elif _is_list(value) and all(_is_text_part(part) for part in value):
            result.parts.SetInParent()
            for part in value:
                result.parts.parts.add(text=part["text"], **({"type": part["type"]} if "type" in part else {}))
        else:
            return False
    elif key in ("name", "tool_call_id") and isinstance(value, str):
        setattr(result, key, value)
    elif key == "tool_calls" and _is_list(value) and all(_is_tool_call(call) for call in value):
        for call in value:
            result.tool_calls.append(_tool_call(call))
    else:
        return False
    return True


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_text_part(part: Any) -> bool:
    return (
        isinstance(part, Mapping) and set(part) <= {"type", "text"} and isinstance(part.get("type", ""), str)
        and isinstance(part.get("text"), str)
    )  # fmt: skip


def _is_tool_call(call: Any) -> bool:
    if not isinstance(call, Mapping) or not set(call) <= {"id", "type", "function"}:
        return False
    if not all(isinstance(call[key], str) for key in ("id", "type") if key in call):
        return False
    function = call.get("function")
    return (
        isinstance(function, Mapping) and set(function) <= {"name", "arguments"} and isinstance(function.get("name"), str)
        and _is_json(function.get("arguments", ""))
    )  # fmt: skip


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return False
    return True


def _tool_call(call: Mapping[str, Any]) -> pb.ChatToolCall:
    result = pb.ChatToolCall()
    if "id" in call:
        result.id = call["id"]
    if "type" in call:
        result.type = call["type"]
    function = call["function"]
    result.function.name = function["name"]
    if "arguments" in function:
        arguments = function["arguments"]
        if isinstance(arguments, str):
            result.function.arguments = arguments
        else:
            result.function.arguments_json = json.dumps(arguments, ensure_ascii=False)
    return result


def _json(value: Any, where: str, index: int | None) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        raise ChatMessageError(where, f"cannot be sent: it is not JSON ({error})", message_index=index) from None


# -- from the wire (the server) ---------------------------------------------------------------------------


def conversation_from_message(conversation: pb.ChatConversation, *, field: str = "conversation") -> tuple[list[dict[str, Any]], Any, bool]:
    """``(messages, tools, add_generation_prompt)`` as the chat formats take them; ChatMessageError (naming
    ``field``) for JSON fields that do not parse."""
    messages = [_dict(message, f"{field}.messages[{index}]", index) for index, message in enumerate(conversation.messages)]
    tools = _parse(conversation.tools_json, f"{field}.tools_json", None) if conversation.tools_json else None
    add_generation_prompt = conversation.add_generation_prompt if conversation.HasField("add_generation_prompt") else True
    return messages, tools, add_generation_prompt


def _dict(message: pb.ChatMessage, where: str, index: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if message.role:
        result["role"] = message.role
    kind = message.WhichOneof("content")
    if kind == "text":
        result["content"] = message.text
    elif kind == "parts":
        result["content"] = [
            {"type": part.type, "text": part.text} if part.HasField("type") else {"text": part.text}
            for part in message.parts.parts
        ]
    elif kind == "null_content":
        result["content"] = None
    if message.HasField("name"):
        result["name"] = message.name
    if message.tool_calls:
        result["tool_calls"] = [
            _call_dict(call, f"{where}.tool_calls[{number}]", index) for number, call in enumerate(message.tool_calls)
        ]
    if message.HasField("tool_call_id"):
        result["tool_call_id"] = message.tool_call_id
    if message.extra_json:
        extra = _parse(message.extra_json, f"{where}.extra_json", index)
        if not isinstance(extra, dict):
            raise ChatMessageError(f"{where}.extra_json", "must be a JSON object of the message's other keys", message_index=index)
        result.update(extra)
    return result


def _call_dict(call: pb.ChatToolCall, where: str, index: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    if call.HasField("id"):
        result["id"] = call.id
    if call.HasField("type"):
        result["type"] = call.type
    function: dict[str, Any] = {"name": call.function.name}
    kind = call.function.WhichOneof("arguments_value")
    if kind == "arguments":
        function["arguments"] = call.function.arguments
    elif kind == "arguments_json":
        function["arguments"] = _parse(call.function.arguments_json, f"{where}.function.arguments_json", index)
    result["function"] = function
    return result


def _parse(text: str, where: str, index: int | None) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ChatMessageError(where, f"is not JSON: {error}", message_index=index) from None
