"""Chat requests of `RemoteEncoding.encode_chat` / `count_chat`: results, operations and request building.

The results have the names, fields and properties of the `tokend` registry's (`ChatEncoding`, `ChatCount`),
so code written against a local `LoadedModel` reads a remote answer unchanged:

    result = enc.encode_chat([{"role": "user", "content": "Hi"}])
    result.ids, result.text, result.message_spans, result.message_counts
    count = enc.count_chat(messages, tools)
    count.total, count.per_message, count.format_overhead, count.estimate

Messages and tools travel as `tokend_api.chat_message` builds them (the same module the server reads them
with); a chat that JSON cannot hold raises `ChatRequestError` here, before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokend_api.chat_message import CONTENT_SPECIAL_TOKENS_VALUES, ChatMessageError, conversation_to_message
from tokend_api.v1 import tokenizer_pb2 as pb

from ._exceptions import ChatRequestError
from ._operations import Operation

__all__ = ["ChatCount", "ChatEncoding", "chat_inputs", "encode_chat_operation", "count_chat_operation"]

_CONTENT_SPECIAL_TOKENS = {value: number for number, value in CONTENT_SPECIAL_TOKENS_VALUES.items() if number}


@dataclass(frozen=True)
class ChatEncoding:
    """`encode_chat`: the prompt ids, the rendered text, and `message_spans[i]` = (start, end) of the ids
    `messages[i]` produced (ids outside every span are the format's own). `spans_exact` is False when a
    template renders a message differently once later messages follow (docs/chat.md)."""

    ids: list[int]
    text: str
    message_spans: list[tuple[int, int]]
    spans_exact: bool = True

    @property
    def message_counts(self) -> list[int]:
        return [end - start for start, end in self.message_spans]


@dataclass(frozen=True)
class ChatCount:
    """`count_chat`: the total and what each message contributed; `estimate` for openai-chat (a rule)."""

    total: int
    per_message: list[int]
    spans_exact: bool = True
    estimate: bool = False

    @property
    def format_overhead(self) -> int:
        """Tokens that belong to no message (BOS, default system prompt, generation prompt, ...)."""
        return self.total - sum(self.per_message)


def chat_inputs(
    messages: Any, tools: Any, add_generation_prompt: Any
) -> tuple[list[pb.ChatConversation], list[int]]:
    """The one conversation of a call as a request item, and its size."""
    try:
        conversation = conversation_to_message(messages, tools, add_generation_prompt)
    except ChatMessageError as error:
        raise ChatRequestError(error.problem, field=error.field, message_index=error.message_index) from None
    return [conversation], [conversation.ByteSize()]


def content_special_tokens_value(value: Any) -> int:
    try:
        return _CONTENT_SPECIAL_TOKENS[value]
    except (KeyError, TypeError):
        raise ChatRequestError(
            f"must be one of {', '.join(_CONTENT_SPECIAL_TOKENS)}, got {value!r}", field="content_special_tokens"
        ) from None


def encode_chat_operation(model: str, content_special_tokens: Any, expect: tuple[str, int] | None) -> Operation:
    mode = content_special_tokens_value(content_special_tokens)
    return Operation(
        "EncodeChat",
        lambda conversations: pb.EncodeChatRequest(model=model, conversations=conversations, content_special_tokens=mode),
        lambda response: [_encoding(result) for result in response.results],
        expect,
    )


def count_chat_operation(
    model: str, content_special_tokens: Any, per_message: bool, expect: tuple[str, int] | None
) -> Operation:
    mode = content_special_tokens_value(content_special_tokens)
    return Operation(
        "CountChatTokens",
        lambda conversations: pb.CountChatTokensRequest(
            model=model, conversations=conversations, content_special_tokens=mode, total_only=not per_message
        ),
        lambda response: [_count(result) for result in response.results],
        expect,
    )


def _encoding(message: pb.ChatEncoding) -> ChatEncoding:
    spans = [(span.start, span.end) for span in message.message_spans]
    return ChatEncoding(list(message.ids), message.text, spans, message.spans_exact)


def _count(message: pb.ChatCount) -> ChatCount:
    return ChatCount(message.total, list(message.per_message), message.spans_exact, message.estimate)
