"""Chat requests as plain data: OpenAI-shaped messages and tools, checked once, before any format sees them.

    >>> messages = parse_messages([{"role": "user", "content": "Hi"}])
    >>> messages[0].role, messages[0].text
    ('user', 'Hi')

A message is a dict with `role` (str) and any of: `content` (a str, None, or a list of text parts
`{"type": "text", "text": str}`), `name` (str), `tool_calls` (assistant only: a list of
`{"id": str, "type": "function", "function": {"name": str, "arguments": str | object}}`) and `tool_call_id`
(tool only). Tools are `{"type": "function", "function": {"name": str, "description": str,
"parameters": JSON schema}}`. Every refusal is a `ChatRequestError` naming the message index and the field
path (`messages[2].tool_calls[0].function.name`). Other keys are kept in `raw` for Jinja templates (which
may read e.g. `reasoning_content`); the built-in formats refuse them, so nothing is silently left out of a
count.

Text must be Unicode: a string holding a lone surrogate (a JSON "\\ud800" escape without its pair) is refused,
naming its field, as openai-harmony and transformers' tokenizers refuse it.

Not handled here: which roles and fields a format accepts (each format checks its own) and size limits
(the service layer bounds the request).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from tokend.errors import ChatRequestError, quoted

__all__ = [
    "ChatMessage", "ToolCall", "ToolDefinition", "parse_messages", "parse_tools", "arguments_text", "refused_part",
    "PART_SEPARATOR",
]  # fmt: skip

KNOWN_MESSAGE_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
# How the built-in text formats (chatml, llama3, openai-chat) join the text parts of one message: as vLLM
# flattens multi-part content for string-only chat formats. harmony and mistral keep parts apart (below).
PART_SEPARATOR = "\n"
_NO_KEYS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ToolCall:
    """One function call of an assistant message. `arguments` is the text a format renders: the string
    as given, or the given object as JSON (`json.dumps(..., ensure_ascii=False)`, as templates' `tojson`)."""

    id: str | None
    name: str
    arguments: str
    arguments_object: Any  # the object when arguments were given as one, else None


@dataclass(frozen=True)
class ToolDefinition:
    """A function tool: JSON-schema `parameters` (None when absent)."""

    name: str
    description: str | None
    parameters: Mapping[str, Any] | None
    raw: Mapping[str, Any]  # as given, for templates (`tool | tojson`)


class ChatMessage(NamedTuple):
    """One checked message. `parts` keeps multi-part content apart (None when content was a string).
    A tuple (immutable, and built in ~0.15 us: a chat checks one per message)."""

    index: int
    role: str
    content: str | None
    parts: tuple[str, ...] | None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    extra_keys: tuple[str, ...] = ()
    raw: Mapping[str, Any] = _NO_KEYS

    @property
    def text(self) -> str:
        """The content as one string: parts joined by PART_SEPARATOR, "" for no content."""
        if self.parts is not None:
            return PART_SEPARATOR.join(self.parts)
        return self.content or ""

    def path(self, *fields: str | int) -> str:
        """`messages[3].tool_calls[0]`-style path of a field of this message, for errors."""
        text = f"messages[{self.index}]"
        for item in fields:
            text += f"[{item}]" if isinstance(item, int) else f".{item}"
        return text

    def refuse(self, problem: str, *fields: str | int) -> ChatRequestError:
        return ChatRequestError(problem, message_index=self.index, field=self.path(*fields))


_new_message = tuple.__new__


def parse_messages(messages: Any) -> tuple[ChatMessage, ...]:
    """Check OpenAI-shaped messages; raise ChatRequestError naming the first bad field."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ChatRequestError(f"must be a list of message objects, got {type(messages).__name__}", field="messages")
    parsed = []
    for index, message in enumerate(messages):
        # The common message, {"role": ..., "content": "..."}, checked in a few operations.
        if type(message) is dict and len(message) == 2:
            role, content = message.get("role"), message.get("content")
            if type(role) is str and role and type(content) is str and (content.isascii() or _is_text(content)) and (
                role.isascii() or _is_text(role)
            ):
                parsed.append(_new_message(ChatMessage, (index, role, content, None, None, (), None, (), message)))
                continue
        parsed.append(_parse_message(index, message))
    return tuple(parsed)


def _parse_message(index: int, message: Any) -> ChatMessage:
    where = f"messages[{index}]"
    if not isinstance(message, Mapping):
        raise ChatRequestError(f"must be an object with a role, got {type(message).__name__}", message_index=index, field=where)
    for key in message:
        if not isinstance(key, str):
            raise ChatRequestError(f"keys must be strings, got {quoted(key)}", message_index=index, field=where)
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise ChatRequestError(
            "is required and must be a non-empty string (system, user, assistant, tool, ...)",
            message_index=index,
            field=f"{where}.role",
        )
    content, parts = _parse_content(index, message.get("content"))
    name = message.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise ChatRequestError("must be a non-empty string when given", message_index=index, field=f"{where}.name")
    tool_calls = _parse_tool_calls(index, role, message.get("tool_calls"))
    tool_call_id = message.get("tool_call_id")
    if tool_call_id is not None and not isinstance(tool_call_id, str):
        raise ChatRequestError("must be a string when given", message_index=index, field=f"{where}.tool_call_id")
    extra = tuple(sorted(key for key in message if key not in KNOWN_MESSAGE_KEYS))
    for key in extra:  # what a template may read (the built-in formats refuse such keys)
        _check_nested_text(message[key], index, f"{where}.{key[:100]}")
    return ChatMessage(
        index, _text(role, index, f"{where}.role"), None if content is None else _text(content, index, f"{where}.content"),
        parts, None if name is None else _text(name, index, f"{where}.name"), tool_calls,
        None if tool_call_id is None else _text(tool_call_id, index, f"{where}.tool_call_id"), extra, message,
    )  # fmt: skip


def _text(text: str, index: int | None, field: str) -> str:
    """`text` as an exact str (a str subclass in a rendered chat would be taken for a special token:
    engine/text_parts.SpecialText), refused when it is not Unicode text (a lone surrogate)."""
    _check_text(text, index, field)
    return text if type(text) is str else str.__str__(text)


def _is_text(text: str) -> bool:
    """True when `text` encodes as UTF-8: it holds no surrogate (one UTF-8 encode: ~1.5-3 ms a MB, only for
    text that is not ASCII)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(text: str, index: int | None, field: str) -> None:
    """Refuse a lone surrogate (half of a UTF-16 pair without the other half: a JSON "\\ud800" escape decodes
    to one). It is not text: openai-harmony and transformers' tokenizers refuse it; tokenizing it would read
    it as U+FFFD without a word. A whole pair (two surrogates a Python caller put side by side) is read as
    the character it encodes, as JSON and openai-harmony read it."""
    if text.isascii() or _is_text(text):  # isascii: a flag of the str, no scan
        return
    lone = _LONE_SURROGATE.search(text)
    if lone is not None:
        raise ChatRequestError(
            f"holds a lone surrogate (U+{ord(lone.group()):04X}) at character {lone.start()}, which is not Unicode "
            "text; send UTF-8 text (in JSON, a \\uD800-\\uDFFF escape must be one half of a pair)",
            message_index=index,
            field=field,
        )


def _check_nested_text(value: Any, index: int | None, field: str) -> None:
    """`_check_text` for every string of a JSON-like value, naming `field` (the value's own path)."""
    if isinstance(value, str):
        _check_text(value, index, field)
        return
    try:
        serialised = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return  # not JSON: what a template makes of it is the template's (the size limits bound it)
    _check_text(serialised, index, field)


_LONE_SURROGATE = re.compile("[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]")


def refused_part(index: int, number: int, kind: Any) -> ChatRequestError:
    """The refusal of content part ``number`` of message ``index``, whose type is ``kind`` (None: it has none);
    a front-end that finds such a part before the messages are built refuses it with this (server/chat_shape.py).

    >>> str(refused_part(2, 0, "image_url"))
    "messages[2].content[0]: only text parts ({'type': 'text', 'text': ...}) can be tokenized, got 'image_url'"
    """
    return ChatRequestError(
        f"only text parts ({{'type': 'text', 'text': ...}}) can be tokenized, got {quoted(kind)}",
        message_index=index,
        field=f"messages[{index}].content[{number}]",
    )


def _parse_content(index: int, content: Any) -> tuple[str | None, tuple[str, ...] | None]:
    where = f"messages[{index}].content"
    if content is None or isinstance(content, str):
        return content, None
    if isinstance(content, (bytes, Mapping)) or not isinstance(content, Sequence):
        raise ChatRequestError(
            f"must be a string, null or a list of text parts, got {type(content).__name__}", message_index=index, field=where
        )
    parts = []
    for number, part in enumerate(content):
        if not isinstance(part, Mapping) or part.get("type") != "text":
            raise refused_part(index, number, part.get("type") if isinstance(part, Mapping) else type(part).__name__)
        text = part.get("text")
        if not isinstance(text, str):
            raise ChatRequestError("must be a string", message_index=index, field=f"{where}[{number}].text")
        parts.append(_text(text, index, f"{where}[{number}].text"))
    return None, tuple(parts)


def _parse_tool_calls(index: int, role: str, tool_calls: Any) -> tuple[ToolCall, ...]:
    where = f"messages[{index}].tool_calls"
    if tool_calls is None:
        return ()
    if isinstance(tool_calls, (str, bytes, Mapping)) or not isinstance(tool_calls, Sequence):
        raise ChatRequestError(f"must be a list of tool calls, got {type(tool_calls).__name__}", message_index=index, field=where)
    if tool_calls and role != "assistant":
        raise ChatRequestError(f"only assistant messages carry tool calls, this one has role {quoted(role)}", message_index=index, field=where)
    calls = []
    for number, call in enumerate(tool_calls):
        path = f"{where}[{number}]"
        if not isinstance(call, Mapping):
            raise ChatRequestError("must be an object with a function", message_index=index, field=path)
        call_type = call.get("type", "function")
        if call_type != "function":
            raise ChatRequestError(f"only function tool calls are supported, got type {quoted(call_type)}", message_index=index, field=f"{path}.type")
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            raise ChatRequestError("must be a string when given", message_index=index, field=f"{path}.id")
        function = call.get("function")
        if not isinstance(function, Mapping):
            raise ChatRequestError("is required: {'name': ..., 'arguments': ...}", message_index=index, field=f"{path}.function")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ChatRequestError("is required and must be a non-empty string", message_index=index, field=f"{path}.function.name")
        arguments = function.get("arguments", "")
        try:
            text = arguments_text(arguments)
        except (TypeError, ValueError) as error:
            raise ChatRequestError(
                f"must be a JSON string or a JSON-serialisable object: {error}", message_index=index, field=f"{path}.function.arguments"
            ) from None
        if call_id is not None:
            _text(call_id, index, f"{path}.id")
        calls.append(ToolCall(call_id, _text(name, index, f"{path}.function.name"), _text(text, index, f"{path}.function.arguments"),
                              None if isinstance(arguments, str) else arguments))
    return tuple(calls)


def arguments_text(arguments: Any) -> str:
    """Tool-call arguments as text: a string as is, anything else as JSON the way templates' `tojson` writes it."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def parse_tools(tools: Any) -> tuple[ToolDefinition, ...] | None:
    """Check OpenAI-shaped function tools; None stays None (no tools), an empty list is no tools too."""
    if tools is None:
        return None
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Sequence):
        raise ChatRequestError(f"must be a list of tool objects, got {type(tools).__name__}", field="tools")
    parsed = []
    for number, tool in enumerate(tools):
        path = f"tools[{number}]"
        if not isinstance(tool, Mapping) or tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
            raise ChatRequestError(
                "must be {'type': 'function', 'function': {'name': ..., 'description': ..., 'parameters': {...}}}", field=path
            )
        function = tool["function"]
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise ChatRequestError("is required and must be a non-empty string", field=f"{path}.function.name")
        description = function.get("description")
        if description is not None and not isinstance(description, str):
            raise ChatRequestError("must be a string when given", field=f"{path}.function.description")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise ChatRequestError("must be a JSON-schema object when given", field=f"{path}.function.parameters")
        name = _text(name, None, f"{path}.function.name")
        description = None if description is None else _text(description, None, f"{path}.function.description")
        try:
            serialised = json.dumps(tool, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            raise ChatRequestError(f"must be JSON-serialisable: {error}", field=path) from None
        _check_text(serialised, None, path)  # a string of its schema
        parsed.append(ToolDefinition(name, description, parameters, tool))
    return tuple(parsed)
