"""The chat operations, written once: ``encode_chat`` and ``count_chat`` over a batch of conversations.

A conversation is OpenAI-shaped messages, optional function tools and ``add_generation_prompt``; the model
version's chat format (docs/chat.md) turns it into prompt tokens. ``TokenizerService`` has these methods
(this class is its mixin, so the chat operations live in their own file):

    service.encode_chat("qwen3", [ChatConversation([{"role": "user", "content": "Hi"}])]).results[0].ids
    service.count_chat("cl100k_base", [ChatConversation(messages)]).results[0].per_message

Each call: checks the request limits (conversations count as batch items; the text of every message, tool
call and tool definition against ``max_request_bytes``, see :func:`conversation_bytes`; per conversation at
most ``MAX_CHAT_MESSAGES`` messages and ``MAX_CHAT_TOOLS_BYTES`` of tool definitions, else InvalidRequest
naming ``conversations[i].messages`` / ``.tools``), resolves the model once and refuses a version without a
chat format (ChatFormatNotSetError), reserves its working memory (``admission``: :func:`chat_working_bytes`)
as every operation does, runs the batch loop (the
deadline is checked between conversations, and a template's time budget is the call's remaining time when
that is shorter than ``TEMPLATE_SECONDS``), bounds the answer (ids, rendered text and spans) as Encode
does, and records the call's facts. A conversation the format refuses is a BatchItemError naming
``conversations[i]``; ``describe`` appends the message field (``conversations[2].messages[1].role``).

Not handled: streaming, images or audio in messages (only text parts can be tokenized).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from tokend.engine.message_counts import plain_message_bytes
from tokend.errors import ChatFormatNotSetError, ChatTemplateError, quoted
from tokend.registry.chat import CONTENT_SPECIAL_TOKENS, ChatCount, ChatEncoding, TemplateClock, TemplateLimits
from tokend.registry.chat.template_limits import WALL_TIME_FACTOR
from tokend.service.admission import working_bytes
from tokend.service.batch import CallState, run_batch
from tokend.service.call_record import current_record
from tokend.service.errors import DeadlineExpired, InvalidRequest
from tokend.service.limits import AnswerBudget, Limits, text_bytes
from tokend.service.results import ChatCounted, ChatEncoded, ModelVersion
from tokend.service.work_sizes import conversation_working_sizes

__all__ = [
    "ChatConversation",
    "ChatOperations",
    "conversation_bytes",
    "chat_working_bytes",
    "template_held_bytes",
    "rendered_text_bytes",
    "TEMPLATE_SECONDS",
    "TEMPLATE_SECONDS_PER_CONVERSATION",
    "MAX_CHAT_DEPTH",
    "MAX_CHAT_MESSAGES",
    "MAX_CHAT_TOOLS_BYTES",
    "ENTRY_BYTES",
    "MESSAGE_BYTES",
    "SCALAR_BYTES",
    "EMPTY_PART_BYTES",
    "TYPED_PART_BYTES",
    "PART_BYTES",
    "EMPTY_TOOL_CALL_BYTES",
    "JSON_CONTAINER_BYTES",
    "JSON_COMMA_BYTES",
]

# A chat template's time for one conversation (all its renders together): CPU time, as much again of waiting for
# the worker's render turn, and 4 times as much wall time (registry/chat/template_limits); never past the call's
# deadline.
TEMPLATE_SECONDS = TemplateLimits().seconds
# ... and for the whole request, all its conversations together: TEMPLATE_SECONDS, plus this much for each
# conversation after the first. Real templates render a conversation of 120 messages and 10 tools in 1-2.5 ms,
# so a batch of 1,024 of those fits; 1,024 conversations each rendering for just under a second did not
# (17 minutes of one worker, answered OK).
TEMPLATE_SECONDS_PER_CONVERSATION = 0.005
# Nesting of messages and tools (tool schemas, object arguments) beyond this is refused: JSON of any
# depth would otherwise reach the renderers and Python's recursion limit. Real tool schemas nest < 10.
MAX_CHAT_DEPTH = 32
# Messages in one conversation. Work and memory per message (its dict, its rendered parts, a span, a template
# render of every prefix for per-message counts) are beyond its bytes, so bytes alone do not bound them:
# 8 MiB of empty messages would be ~700,000. Long agent sessions have a few thousand.
MAX_CHAT_MESSAGES = 10_000
# Tool definitions (their JSON schemas) of one conversation, as conversation_bytes counts them: real ones
# are a few KB each (OpenAI accepts at most 128 tools).
MAX_CHAT_TOOLS_BYTES = 1 << 20
# Working memory of a chat beyond the text's merge and ids: the messages as rendered text, its parts and the
# per-message runs (about 4 bytes per input byte, the str and list slots for the longest conversation).
RENDER_BYTES_PER_BYTE = 4
# What a number, boolean or null counts against max_request_bytes (about its JSON text).
SCALAR_BYTES = 8
# Messages and tools also count their structure: ENTRY_BYTES per entry of an object or list and 4 entries' worth
# for its brackets (a schema's nodes are what a chat format renders: 100,000 empty properties were 1.2 MB of
# JSON counted as their 0.6 MB of keys). For messages it keeps the count near the request's size on the wire:
# 1,400,000 messages {"role": "user", "content": "x"} are 15 MB of gRPC message counted as 22 MB of text, and
# empty messages ({}: 2 bytes of protobuf each) counted nothing; each message object now counts at least 8, a
# plain one 12, besides MESSAGE_BYTES (server/wire_bound.py derives the largest acceptable message from this).
ENTRY_BYTES = 2
# Each message counts this much more, for what it costs beyond its bytes: its dict (~270 bytes, ~1 us to build
# from a gRPC message), its rendered parts and span. 24 keeps 8 MiB of chat to ~260,000 messages at most (a
# real batch: 1,024 conversations of 128 messages counts 3 MiB of it), which check_chat_shape refuses from
# the message count alone, before any dict is built.
MESSAGE_BYTES = 24
# What a plain message counts besides its strings: MESSAGE_BYTES, and ENTRY_BYTES for each of its 2 entries
# and 4 for its brackets.
PLAIN_MESSAGE_STRUCTURE = MESSAGE_BYTES + ENTRY_BYTES * (2 + 4)
# The least any message counts: MESSAGE_BYTES and an empty object's brackets.
EMPTY_MESSAGE_BYTES = MESSAGE_BYTES + ENTRY_BYTES * 4
# Each content part counts this much more, for what it costs beyond its bytes, as a message does: its dict
# (~200 bytes and ~0.4 us to build from a gRPC message, more to check and render). An empty part is 2 bytes
# of protobuf and counted 16: 8 MiB held 524,288 of them, 0.8 s of worker CPU and +150 MiB before the first
# one's missing "type" was refused. Now it holds ~210,000 at most (real messages have a handful of parts).
PART_BYTES = MESSAGE_BYTES
# The least a content part and a tool call count (an empty part is {"text": ""}: its list entry, its object and
# key, and PART_BYTES; a tool call {"function": {"name": ""}}), and each container and comma of JSON text in a
# JSON field (an object or list counts ENTRY_BYTES per entry and 4 for its brackets): what a front-end that
# counts these in the request's bytes may refuse before it parses them (server/chat_shape.py).
EMPTY_PART_BYTES = PART_BYTES + ENTRY_BYTES * (1 + 1 + 4) + len("text")
# What a part with a "type" counts more, besides its type's bytes: the entry and its key.
TYPED_PART_BYTES = ENTRY_BYTES + len("type")
EMPTY_TOOL_CALL_BYTES = ENTRY_BYTES * (1 + 1 + 4 + 1 + 4) + len("function") + len("name")
JSON_CONTAINER_BYTES = ENTRY_BYTES * 4
JSON_COMMA_BYTES = ENTRY_BYTES
# Answer framing per message span (two varints and their tags).
SPAN_BYTES = 12
# The rendered text of a conversation may be at most this many times its counted bytes (conversation_bytes), plus
# TEMPLATE_TEXT_BYTES of the template's own text (``rendered_text_bytes``): its encode's memory was reserved on the
# counted bytes, and a template that renders a content ten times (a loop over it, ``content * 10``) made the text
# ten times what was reserved (docs/decisions.md, estimates24). Twice for an encoding whose working state follows
# the whole text (``whole_text_working_state``: a SentencePiece Unigram model, ~20 bytes a byte of it); a real
# template's own text (headers, a default system prompt) is the 64 KiB. Twelve times for the others, whose merge
# follows the pieces: tools rendered with ``tojson(indent=4)`` grow with their nesting (50 tools nested 4 deep
# 3.2 times their counted bytes, 14 deep 8.7; a 1 MB schema at the 32 levels MAX_CHAT_DEPTH allows 10.7) and are
# answered within their reservation (+29-35 MiB against 22.9 for the 10.7 times), so twice refused real tool
# catalogues.
RENDERED_TEXT_FACTOR = 2
RENDERED_TEXT_FACTOR_PIECES = 12
TEMPLATE_TEXT_BYTES = 64 << 10


@dataclass(frozen=True)
class ChatConversation:
    """One chat: OpenAI-shaped ``messages``, optional function ``tools``, and whether to end with the
    assistant's header (``add_generation_prompt``), as ``LoadedModel.encode_chat`` takes them."""

    messages: Sequence[Any]
    tools: Sequence[Any] | None = None
    add_generation_prompt: bool = True


class ChatOperations:
    """``encode_chat`` and ``count_chat`` of ``TokenizerService`` (which provides ``models`` and ``limits``)."""

    models: Any
    limits: Limits

    def encode_chat(
        self,
        model: str,
        conversations: Sequence[ChatConversation],
        *,
        content_special_tokens: str = "reference",
        call: CallState | None = None,
    ) -> ChatEncoded:
        """The prompt ids, rendered text and per-message spans of each conversation."""
        sizes, loaded = self._chat_request(model, conversations, content_special_tokens, call)
        chat = loaded.chat
        answer = AnswerBudget(self.limits, items=len(conversations), max_token_value=loaded.encoding.max_token_value)
        extra = 0  # rendered text and spans, beside the ids AnswerBudget measures
        # The rendered text is part of the answer: a template may not build more than can be sent.
        max_chars = min(TemplateLimits().max_chars, self.limits.max_response_bytes)
        limits = TemplateLimits(TEMPLATE_SECONDS, max_chars, max_held_bytes=template_held_bytes(sizes, max_chars))
        request = _RequestTime(len(conversations))

        def encode(index: int, conversation: ChatConversation) -> ChatEncoding:
            nonlocal extra
            result = _within_deadline(
                call, request, index, len(conversations),
                lambda limits: chat.encode_chat(
                    conversation.messages, conversation.tools, conversation.add_generation_prompt,
                    content_special_tokens=content_special_tokens, limits=limits,
                ),
                replace(limits, max_text_bytes=rendered_text_bytes(sizes[index], loaded.encoding)),
            )  # fmt: skip
            answer.add(result.ids)
            extra += text_bytes(result.text) + SPAN_BYTES * len(result.message_spans)
            self.limits.check_answer(answer.size + extra, partial=True)
            return result

        with self._admitted(self._chat_working_bytes("encode_chat", loaded.encoding, conversations, sizes, call=call), call), request.clock.keeping_place():
            results = run_batch(conversations, encode, call=call, field="conversations", with_index=True)
        total = sum(len(result.ids) for result in results)
        _record("encode_chat", len(conversations), total, sum(sizes))
        return ChatEncoded(ModelVersion(loaded.name, loaded.version), results, total)

    def count_chat(
        self,
        model: str,
        conversations: Sequence[ChatConversation],
        *,
        content_special_tokens: str = "reference",
        per_message: bool = True,
        call: CallState | None = None,
    ) -> ChatCounted:
        """The prompt tokens of each conversation, in total and per message (``per_message=False``: totals
        only, which spares a template one render per message)."""
        sizes, loaded = self._chat_request(model, conversations, content_special_tokens, call)
        chat = loaded.chat
        limits = TemplateLimits(TEMPLATE_SECONDS, max_held_bytes=template_held_bytes(sizes, TemplateLimits().max_chars))
        request = _RequestTime(len(conversations))

        def count(index: int, conversation: ChatConversation) -> ChatCount:
            return _within_deadline(
                call, request, index, len(conversations),
                lambda limits: chat.count_chat(
                    conversation.messages, conversation.tools, conversation.add_generation_prompt,
                    content_special_tokens=content_special_tokens, limits=limits, per_message=per_message,
                ),
                replace(limits, max_text_bytes=rendered_text_bytes(sizes[index], loaded.encoding)),
            )  # fmt: skip

        with self._admitted(self._chat_working_bytes("count_chat", loaded.encoding, conversations, sizes, call=call), call), request.clock.keeping_place():
            results = run_batch(conversations, count, call=call, field="conversations", with_index=True)
        total = sum(result.total for result in results)
        _record("count_chat", len(conversations), total, sum(sizes))
        return ChatCounted(ModelVersion(loaded.name, loaded.version), results, total)

    def check_chat_shape(self, message_counts: Sequence[int]) -> None:
        """The checks a front-end can make before it builds the messages, from how many each conversation has:
        conversations against ``max_batch_items``, messages per conversation against ``MAX_CHAT_MESSAGES``, and
        the least every message counts (``EMPTY_MESSAGE_BYTES``, its object's brackets) against
        ``max_request_bytes``. Building a message's dict costs ~1 us and ~270 bytes: 966,000 one-character
        messages (10 MB of gRPC) took 1.1 s and +257 MiB before ``conversation_bytes`` refused them."""
        over = next(((index, count) for index, count in enumerate(message_counts) if count > MAX_CHAT_MESSAGES), None)
        self.check_chat_totals(len(message_counts), over, EMPTY_MESSAGE_BYTES * sum(message_counts))

    def check_chat_totals(
        self, conversations: int, first_over: tuple[int, int] | None, least_bytes: int,
        first_tools_over: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        """``check_chat_shape`` from totals, in the order the parsed request is checked: ``first_over`` is
        (index, messages) of the first conversation with more than ``MAX_CHAT_MESSAGES``, ``first_tools_over``
        (index, bytes at least) of the first whose tools count more than ``MAX_CHAT_TOOLS_BYTES``, and
        ``least_bytes`` the least the request counts against ``max_request_bytes`` (its messages at
        EMPTY_MESSAGE_BYTES, and what else a front-end counted before parsing: EMPTY_PART_BYTES,
        EMPTY_TOOL_CALL_BYTES, JSON_CONTAINER_BYTES, JSON_COMMA_BYTES; the gRPC server does, from a large
        request's wire bytes: server/chat_shape.py).

            service.check_chat_totals(2, None, 640)  # within every limit: returns; else the limit's error
        """
        self.limits.check_request(items=conversations, input_bytes=0)
        if first_over is not None and (first_tools_over is None or first_over[0] <= first_tools_over[0]):
            raise _too_many_messages(f"conversations[{first_over[0]}]", first_over[1])
        if first_tools_over is not None:
            raise _too_many_tool_bytes(f"conversations[{first_tools_over[0]}]", first_tools_over[1], at_least=True)
        self.limits.check_request(items=conversations, input_bytes=least_bytes)

    def _admitted(self, size: int, call: CallState | None) -> Any:
        raise NotImplementedError  # TokenizerService's

    def _chat_working_bytes(self, operation: str, encoding: Any, conversations: Sequence[ChatConversation],
                            sizes: Sequence[int], *, call: CallState | None = None) -> int:
        """``chat_working_bytes`` of the conversations, their strings counted as the model normalizes them
        (``conversation_working_sizes``); past twice ``max_request_bytes`` of them RequestLimitExceeded."""
        admission = getattr(self, "admission", None)
        if admission is not None:
            sizes = conversation_working_sizes(partial(chat_working_bytes, operation), encoding, conversations, sizes,
                                               small_bytes=admission.small_bytes, check=self.limits.check_working_text,
                                               call=call)
        return chat_working_bytes(operation, sizes)

    def _chat_request(self, model: str, conversations: Sequence[ChatConversation], content_special_tokens: str,
                      call: CallState | None) -> tuple[list[int], Any]:
        """Request checks and limits first (nothing is loaded for a refused request), then the model, which
        must have a chat format. Returns the input bytes of each conversation and the LoadedModel."""
        if content_special_tokens not in CONTENT_SPECIAL_TOKENS:
            raise InvalidRequest(
                "content_special_tokens",
                f"unknown value {quoted(content_special_tokens)}; use one of {', '.join(CONTENT_SPECIAL_TOKENS)}",
            )
        self.limits.check_request(items=len(conversations), input_bytes=0)  # before sizing a million items
        sizes = []
        for index, conversation in enumerate(conversations):
            if not isinstance(conversation, ChatConversation):
                raise InvalidRequest(f"conversations[{index}]", f"expected a ChatConversation, got {type(conversation).__name__}")
            sizes.append(conversation_bytes(conversation, f"conversations[{index}]"))
        self.limits.check_request(items=len(conversations), input_bytes=sum(sizes))
        loaded = self.models.load(model, call=call)
        if loaded.chat is None:
            raise ChatFormatNotSetError(loaded.ref)
        return sizes, loaded


class _RequestTime:
    """The template time one request's conversations share (TEMPLATE_SECONDS and
    TEMPLATE_SECONDS_PER_CONVERSATION), charged with the CPU time of its renders only (a TemplateClock):
    tokenizing the rendered text, and waiting for the GIL, are not the template's. And, so that a request's
    renders end on a worker that keeps them off the CPU, WALL_TIME_FACTOR times as much wall time from its
    first render (each conversation alone has that factor of its own CPU time: without this, a request of
    1,024 conversations could hold its handler thread ~4 s each).

        >>> request = _RequestTime(3)
        >>> request.seconds == TEMPLATE_SECONDS + 2 * TEMPLATE_SECONDS_PER_CONVERSATION
        True
        >>> request.wall_left(0.0) == WALL_TIME_FACTOR * request.seconds   # the first render starts its clock
        True
    """

    __slots__ = ("seconds", "clock", "wall_deadline")

    def __init__(self, conversations: int) -> None:
        self.seconds = TEMPLATE_SECONDS + TEMPLATE_SECONDS_PER_CONVERSATION * max(0, conversations - 1)
        self.clock = TemplateClock()
        self.wall_deadline: float | None = None  # a time.monotonic() value, set by the first render

    def remaining(self) -> float:
        return self.seconds - self.clock.spent

    def wall_left(self, now: float) -> float:
        if self.wall_deadline is None:
            self.wall_deadline = now + WALL_TIME_FACTOR * self.seconds
        return self.wall_deadline - now


def _within_deadline(call: CallState | None, request: _RequestTime, index: int, total: int, render: Any,
                     limits: TemplateLimits) -> Any:
    """``render(limits)`` with the template's time cut to what the request's templates and the call have
    left: a template stopped by the call's deadline (its ``hard_deadline``) is the call's DeadlineExpired; one
    stopped by the request's share a time limit saying so. The share is charged with the renders' CPU time
    (``_RequestTime``) and what is left of it given as the render's CPU time (TemplateLimits.seconds); what is
    left of the request's wall time, when less than the render's own, as its wall time (``wall_seconds``)."""
    seconds, cut_by_request = limits.seconds, False
    request_left = request.remaining()
    if request_left < seconds and index > 0:  # the first conversation has the whole of it (>= its own limit)
        seconds, cut_by_request = request_left, True
    now = time.monotonic()
    wall_left, wall_seconds = request.wall_left(now), limits.wall_seconds
    if index > 0 and wall_left < WALL_TIME_FACTOR * seconds:  # (the first: its own bound is the request's)
        wall_seconds, cut_by_request = max(0.0, wall_left), True
    remaining = call.time_remaining() if call is not None else None
    hard_deadline = None if remaining is None else now + remaining
    try:
        return render(replace(limits, seconds=max(0.0, seconds), wall_seconds=wall_seconds, hard_deadline=hard_deadline,
                              clock=request.clock))  # fmt: skip
    except ChatTemplateError as error:
        if error.reason == "time_limit" and hard_deadline is not None and time.monotonic() >= hard_deadline:
            raise DeadlineExpired(index, total) from None
        if error.reason == "time_limit" and cut_by_request:
            raise ChatTemplateError(
                f"the chat template ran out of this request's template time: {request.seconds:g} s for its {total:,} "
                f"conversation(s) together ({TEMPLATE_SECONDS:g} s, and {TEMPLATE_SECONDS_PER_CONVERSATION * 1000:g} ms "
                f"for each conversation after the first, of CPU time; and {WALL_TIME_FACTOR:g}x that of wall time from "
                f"its first render); send fewer conversations a request",
                reason="time_limit", message_index=error.message_index, field=error.field,
            ) from None
        raise


def chat_working_bytes(operation: str, sizes: Sequence[int]) -> int:
    """The working memory ``admission`` reserves for a chat call whose conversations have ``sizes`` input
    bytes: an encode or count of that much text (``working_bytes``), the rendering of the longest
    conversation, and (``encode_chat``) the rendered text of each, which the answer holds.

    >>> chat_working_bytes("count_chat", [1 << 20]) == working_bytes("count", sizes=[1 << 20]) + (4 << 20)
    True
    """
    render = RENDER_BYTES_PER_BYTE * max(sizes, default=0)
    if operation == "encode_chat":
        return working_bytes("encode", sizes=sizes) + render + sum(sizes)
    return working_bytes("count", sizes=sizes) + render


def rendered_text_bytes(size: int, encoding: Any = None) -> int:
    """The most bytes of rendered text a conversation of ``size`` counted bytes may become
    (``TemplateLimits.max_text_bytes``): what its reservation covers, with room for the template's own text.
    Twice ``size`` for an encoding whose working state follows the whole text (or when none is given), twelve
    times for one whose merge follows the pieces.

    >>> rendered_text_bytes(1 << 20) == (2 << 20) + (64 << 10)
    True
    """
    factor = RENDERED_TEXT_FACTOR
    if encoding is not None and not getattr(encoding, "whole_text_working_state", True):
        factor = RENDERED_TEXT_FACTOR_PIECES
    return factor * size + TEMPLATE_TEXT_BYTES


def template_held_bytes(sizes: Sequence[int], max_chars: int) -> int:
    """What a chat template's render may hold at once of the values it made (``TemplateLimits.max_held_bytes``):
    the rendering memory ``chat_working_bytes`` reserves for the longest conversation (RENDER_BYTES_PER_BYTE
    per input byte), and two values of ``max_chars`` ASCII characters (the output, and one being made). The
    70 templates llama.cpp ships hold at most 0.61 of it for 8 MB conversations (docs/decisions.md).

    >>> template_held_bytes([1 << 20], 16 << 20) == (32 << 20) + (4 << 20)
    True
    """
    return 2 * max_chars + RENDER_BYTES_PER_BYTE * max(sizes, default=0)


def conversation_bytes(conversation: ChatConversation, where: str = "conversation") -> int:
    """What a conversation counts against ``max_request_bytes``: the UTF-8 bytes of every string in its
    messages and tools (keys included), ``SCALAR_BYTES`` per number, boolean or null, and ``ENTRY_BYTES`` per
    entry of an object or list and 4 more per object or list (a message, a content part, a tool call, a
    schema node). Nesting deeper than ``MAX_CHAT_DEPTH``, more than ``MAX_CHAT_MESSAGES`` messages or more
    than ``MAX_CHAT_TOOLS_BYTES`` of tools is an InvalidRequest naming the conversation's messages or tools.
    Each message of a list counts ``MESSAGE_BYTES`` more, and each part of its content ``PART_BYTES`` more.

    >>> conversation_bytes(ChatConversation([{"role": "user", "content": "héllo"}]))  # 21 of text, 12 + 24
    57
    >>> conversation_bytes(ChatConversation([{}, {}]))
    64
    """
    size = 0
    messages = conversation.messages
    if isinstance(messages, (list, tuple)):
        if len(messages) > MAX_CHAT_MESSAGES:
            raise _too_many_messages(where, len(messages))
        plain = plain_message_bytes(messages)  # the common chat, in C
        if plain is not None:
            size += plain + PLAIN_MESSAGE_STRUCTURE * len(messages)
        for number, message in enumerate(messages if plain is None else ()):
            if type(message) is dict and len(message) == 2:
                # The common message, {"role": ..., "content": ...} in ASCII: "role" + "content" is 11 bytes.
                role, content = message.get("role"), message.get("content")
                if type(role) is str and type(content) is str and role.isascii() and content.isascii():
                    size += 11 + PLAIN_MESSAGE_STRUCTURE + len(role) + len(content)
                    continue
            size += MESSAGE_BYTES + _nested_bytes(message, f"{where}.messages[{number}]", ENTRY_BYTES)
            content = message.get("content") if isinstance(message, Mapping) else None
            if isinstance(content, (list, tuple)):
                size += PART_BYTES * len(content)
    else:
        size += _nested_bytes(messages, f"{where}.messages", ENTRY_BYTES)
    if conversation.tools is not None:
        tools = _nested_bytes(conversation.tools, f"{where}.tools", ENTRY_BYTES)
        if tools > MAX_CHAT_TOOLS_BYTES:
            raise _too_many_tool_bytes(where, tools)
        size += tools
    return size


def _too_many_tool_bytes(where: str, size: int, at_least: bool = False) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.tools",
        f"the tool definitions take {'at least ' if at_least else ''}{size:,} bytes, over the limit of "
        f"{MAX_CHAT_TOOLS_BYTES:,} per conversation; send fewer tools or shorter schemas",
    )


def _too_many_messages(where: str, count: int) -> InvalidRequest:
    return InvalidRequest(
        f"{where}.messages",
        f"has {count:,} messages, over the limit of {MAX_CHAT_MESSAGES:,} per conversation; "
        "send a shorter conversation (count a long one in parts and add the counts)",
    )


def _nested_bytes(value: Any, where: str, structure: int = 0) -> int:
    """UTF-8 bytes of the strings in `value`, SCALAR_BYTES per other leaf; `structure` (ENTRY_BYTES) more per
    entry of an object or list and 4 times that per object or list."""
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            size += text_bytes(item)
            continue
        if isinstance(item, (bytes, bytearray)):
            size += len(item)
            continue
        if depth >= MAX_CHAT_DEPTH and isinstance(item, (Mapping, list, tuple)):
            raise InvalidRequest(where, f"nests deeper than {MAX_CHAT_DEPTH} levels; messages and tools are JSON of modest depth")
        if isinstance(item, Mapping):
            size += structure * (len(item) + 4)
            for key, inner in item.items():
                stack.append((key, depth + 1))
                stack.append((inner, depth + 1))
        elif isinstance(item, (list, tuple)):
            size += structure * (len(item) + 4)
            stack.extend((inner, depth + 1) for inner in item)
        else:
            size += SCALAR_BYTES
    return size


def _record(operation: str, items: int, tokens: int, size: int) -> None:
    record = current_record()
    if record is not None:
        record.operation, record.items, record.tokens, record.input_bytes = operation, items, tokens, size
