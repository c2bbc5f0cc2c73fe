"""The playground's chat endpoints: JSON body → ``encode_chat`` / ``count_chat`` → JSON answer. No HTTP here.

    encode_chat {"model", "messages": [...], "tools": [...]?, "add_generation_prompt": true?
                 | "conversations": [{"messages", "tools", "add_generation_prompt"}, ...],
                 "content_special_tokens": "reference" | "text" | "refuse", "detail": false}
                → {"model", "results": [{"ids", "text", "message_spans": [[start, end], ...], "spans_exact",
                   "tokens"?}], "total_tokens"}
    count_chat  the same without "detail", plus "per_message": true
                → {"model", "results": [{"total", "per_message", "spans_exact", "estimate"}], "total"}

Messages and tools are OpenAI's dicts as they are (docs/chat.md); the chat format checks them and a refusal
is a 400 naming the field (``conversations[0].messages[1].role``: one conversation sent as "messages" is
``conversations[0]``). A model without a chat format is a 422. ``detail`` adds each token as ``encode``'s
detail does, within the same ``max_detail_bytes``.
"""

from __future__ import annotations

from typing import Any

from tokend.service import ChatConversation, RequestLimitExceeded
from tokend.service.chat import conversation_bytes

from .http_error import bad_request
from .token_view import describe_tokens

__all__ = ["ChatApi"]

_CONVERSATION_FIELDS = ("messages", "tools", "add_generation_prompt")
_ENCODE_CHAT_FIELDS = frozenset({"model", "conversations", "content_special_tokens", "detail", *_CONVERSATION_FIELDS})
_COUNT_CHAT_FIELDS = frozenset({"model", "conversations", "content_special_tokens", "per_message", *_CONVERSATION_FIELDS})


class ChatApi:
    """The chat endpoints of ``PlaygroundApi`` (which provides ``service`` and ``limits``)."""

    service: Any
    limits: Any

    def encode_chat(self, body: Any) -> dict[str, Any]:
        from .api import _boolean, _model_ref, _model_version, _object  # api.py imports this module

        request = _object(body, _ENCODE_CHAT_FIELDS)
        ref = _model_ref(request)
        conversations = _conversations(request)
        detail = _boolean(request, "detail")
        if detail:
            size = sum(map(conversation_bytes, conversations))
            if size > self.limits.max_detail_bytes:
                raise RequestLimitExceeded(
                    "max_detail_bytes", self.limits.max_detail_bytes, size, unit='input bytes with "detail": true',
                    hint='send a shorter chat or ask without "detail"',
                )  # fmt: skip
        encoded = self.service.encode_chat(ref, conversations, content_special_tokens=_content_rule(request))
        results = [
            {"ids": result.ids, "text": result.text, "message_spans": [list(span) for span in result.message_spans],
             "spans_exact": result.spans_exact}
            for result in encoded.results
        ]  # fmt: skip
        if detail:
            encoding = self.service.models.load(f"{encoded.model.name}@{encoded.model.version}").encoding
            special_names = {token_id: text for text, token_id in encoding.special_tokens.items()}
            for result in results:
                result["tokens"] = describe_tokens(encoding, result["ids"], special_names)
        return {"model": _model_version(encoded.model), "results": results, "total_tokens": encoded.total_tokens}

    def count_chat(self, body: Any) -> dict[str, Any]:
        from .api import _model_ref, _model_version, _object

        request = _object(body, _COUNT_CHAT_FIELDS)
        per_message = request.get("per_message", True)
        if not isinstance(per_message, bool):
            raise bad_request('"per_message" must be true or false')
        counted = self.service.count_chat(
            _model_ref(request), _conversations(request), content_special_tokens=_content_rule(request),
            per_message=per_message,
        )  # fmt: skip
        results = [
            {"total": result.total, "per_message": result.per_message, "spans_exact": result.spans_exact,
             "estimate": result.estimate}
            for result in counted.results
        ]  # fmt: skip
        return {"model": _model_version(counted.model), "results": results, "total": counted.total}


def _conversations(request: dict[str, Any]) -> list[ChatConversation]:
    single = "messages" in request
    if single == ("conversations" in request):
        raise bad_request('send exactly one of "messages" (one chat) or "conversations" (a list of chats)')
    if single:
        return [_conversation(request)]
    if any(field in request for field in ("tools", "add_generation_prompt")):
        raise bad_request('"tools" and "add_generation_prompt" go inside each conversation')
    items = request["conversations"]
    if not isinstance(items, list):
        raise bad_request('"conversations" must be a list of {"messages", "tools", "add_generation_prompt"} objects')
    conversations = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "messages" not in item or set(item) - set(_CONVERSATION_FIELDS):
            raise bad_request(
                f'conversations[{index}] must be an object with "messages" (and optionally "tools", '
                '"add_generation_prompt")', item=index,
            )  # fmt: skip
        conversations.append(_conversation(item))
    return conversations


def _conversation(item: dict[str, Any]) -> ChatConversation:
    # The chat format checks messages, tools and add_generation_prompt itself (naming the field).
    return ChatConversation(item["messages"], item.get("tools"), item.get("add_generation_prompt", True))


def _content_rule(request: dict[str, Any]) -> str:
    value = request.get("content_special_tokens", "reference")
    if not isinstance(value, str):
        raise bad_request('"content_special_tokens" must be "reference", "text" or "refuse"')
    return value
