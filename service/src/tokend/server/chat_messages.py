"""The chat RPCs' messages ⇄ the service's values: conversations in, ChatEncoding / ChatCount out.

    conversations = conversations_from(request.conversations)      # [ChatConversation(messages, tools, ...)]
    response.results.extend(chat_encoding_message(result) for result in encoded.results)

The dict shape of each message is rebuilt by the API package's codec (``tokend_api.chat_message``, which the
client uses to build the request), so the chat format checks the same dict a local call would get. A JSON
field of the request that does not parse is an InvalidRequest naming it (``conversations[1].tools_json``).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokend_api.chat_message import CONTENT_SPECIAL_TOKENS_VALUES, ChatMessageError, conversation_from_message
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.registry.chat import ChatCount, ChatEncoding
from tokend.service import ChatConversation, InvalidRequest

__all__ = ["conversations_from", "content_special_tokens_from", "chat_encoding_message", "chat_count_message"]


def conversations_from(messages: Iterable[pb.ChatConversation]) -> list[ChatConversation]:
    conversations = []
    for index, message in enumerate(messages):
        try:
            chat, tools, add_generation_prompt = conversation_from_message(message, field=f"conversations[{index}]")
        except ChatMessageError as error:
            raise InvalidRequest(error.field, error.problem) from None
        conversations.append(ChatConversation(chat, tools, add_generation_prompt))
    return conversations


def content_special_tokens_from(value: int) -> str:
    try:
        return CONTENT_SPECIAL_TOKENS_VALUES[value]
    except KeyError:
        known = ", ".join(name for name in pb.ContentSpecialTokens.keys() if not name.endswith("_UNSPECIFIED"))
        raise InvalidRequest("content_special_tokens", f"unknown value {value}; use one of {known}") from None


def chat_encoding_message(result: ChatEncoding) -> pb.ChatEncoding:
    message = pb.ChatEncoding(text=result.text, spans_exact=result.spans_exact)
    message.ids.extend(result.ids)
    for start, end in result.message_spans:
        message.message_spans.add(start=start, end=end)
    return message


def chat_count_message(result: ChatCount) -> pb.ChatCount:
    return pb.ChatCount(
        total=result.total, per_message=result.per_message, spans_exact=result.spans_exact, estimate=result.estimate
    )
