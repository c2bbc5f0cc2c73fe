"""`ChatFormat` (how a conversation becomes segments) and `ChatEncoder` (a format bound to one model's encoding).

    >>> from tokend import Encoding, get_encoding
    >>> from tokend.registry.chat.chatml import ChatmlFormat
    >>> base = get_encoding("cl100k_base")
    >>> ChatEncoder(base, ChatmlFormat(), ref="cl100k_base@1")
    Traceback (most recent call last):
    tokend.errors.ModelFormatError: cl100k_base@1: chat format chatml needs the special tokens ['<|im_end|>', ...
    >>> # cl100k_base plus ChatML's two tokens, as tiktoken's README extends it (gpt-3.5-turbo's ids)
    >>> encoding = Encoding("cl100k_im", pat_str=base.pattern, mergeable_ranks=base.mergeable_ranks,
    ...                     special_tokens={**base.special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265})
    >>> encoder = ChatEncoder(encoding, ChatmlFormat(), ref="cl100k_im@1")
    >>> result = encoder.encode_chat([{"role": "user", "content": "Hi"}])
    >>> result.ids, result.message_spans
    ([100264, 882, 198, 13347, 100265, 198, 100264, 78191, 198], [(0, 6)])
    >>> result.text
    '<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n'
    >>> encoder.count_chat([{"role": "user", "content": "Hi"}]).total
    9

Special-token text inside what the caller sends (`content_special_tokens`):
- "reference" (default): what the format's reference renderer does. transformers (chatml, llama3, Jinja
  templates) tokenizes the rendered string, so "<|im_end|>" typed into a message becomes the real control
  token — a user can close their turn and forge another. openai-harmony and mistral-common encode content
  as ordinary text, and so do harmony, mistral and openai-chat here.
- "text": content is always ordinary text (built-in formats; a template's output cannot be told apart
  from the content in it, so templates refuse this value).
- "refuse": any special-token text in content, names, tool calls or tools is an error naming the field.

Not handled here: reading manifests (spec), limits on request size (the service layer).
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tokend.engine.message_counts import MessageCounter, MessageLayout, message_counter
from tokend.engine.special_tokens import special_token_regex
from tokend.errors import ChatRequestError, ModelFormatError, quoted
from tokend.registry.chat.messages import ChatMessage, ToolDefinition, parse_messages, parse_tools
from tokend.registry.chat.template_limits import TemplateLimits
from tokend.registry.chat.segments import ChatCount, ChatEncoding, RenderedChat, chat_count, count_rendered, encode_rendered
from tokend.registry.chat.text_builder import special_text_prefixes

__all__ = ["ChatFormat", "ChatEncoder", "RenderContext", "ContentSpecialTokens", "CONTENT_SPECIAL_TOKENS"]

ContentSpecialTokens = Literal["reference", "text", "refuse"]
_DEFAULT_LIMITS = TemplateLimits()
_UNSET: Any = object()
_MAX_FORBIDDEN = 64  # strings the native plain-chat walk looks for (message_counts.c); more: the general path
CONTENT_SPECIAL_TOKENS = ("reference", "text", "refuse")


@dataclass(frozen=True)
class RenderContext:
    """What a format needs besides the conversation."""

    special_tokens: frozenset[str]  # of the encoding
    content_specials: bool  # special-token text in content becomes special tokens
    limits: TemplateLimits
    spans: bool = True  # per-message spans wanted (templates render every prefix for them)


class ChatFormat(ABC):
    """A chat format: renders checked messages into segments. Subclasses: one per built-in, and templates."""

    name: str = ""
    # What the reference renderer does with special-token text inside content (see module docstring).
    reference_content_specials: bool = False
    supports_text_content_rule: bool = True
    estimate: bool = False  # True: count_chat follows a documented rule; there are no real ids

    def required_special_tokens(self) -> frozenset[str]:
        """Special tokens the format emits; a model without them cannot carry the format."""
        return frozenset()

    @abstractmethod
    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat: ...

    def count(self, encoding, messages, tools, add_generation_prompt, context: RenderContext) -> ChatCount:
        rendered = self.render(messages, tools, add_generation_prompt, context)
        context.limits.check_text(rendered.parts)  # before its encoding's memory is taken
        return count_rendered(encoding, rendered)

    def encode(self, encoding, messages, tools, add_generation_prompt, context: RenderContext) -> ChatEncoding:
        rendered = self.render(messages, tools, add_generation_prompt, context)
        context.limits.check_text(rendered.parts)
        return encode_rendered(encoding, rendered)

    def describe(self) -> str:
        return self.name

    def plain_chat_counter(self, encoding):
        """For a format whose plain-chat cost depends on more than the roles (templates: on the conversation's
        shape, template_layout): `(messages, add_generation_prompt, per_message, limits)` -> ChatCount, or None
        for "the general path". Asked once per ChatEncoder; None (the default): no such counter."""
        return None

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout | None:
        """What a plain message (`{"role", "content"}` strings) costs in this format, for `count_chat` to count
        plain chats without rendering them (engine/message_counts): the roles, and the content this format
        itself treats specially (`forbidden`). ChatEncoder adds the special-token text to refuse and, unless the
        layout gives it, the `overhead`, which it counts by rendering the empty chat. None (the default): no
        such shortcut."""
        return None


class ChatEncoder:
    """A chat format bound to an encoding: the `encode_chat` / `count_chat` operation on a loaded model."""

    def __init__(self, encoding, chat_format: ChatFormat, *, ref: str = "") -> None:
        specials = frozenset(encoding.special_tokens)
        missing = sorted(chat_format.required_special_tokens() - specials)
        if missing:
            raise ModelFormatError(
                f"{ref or encoding.name}: chat format {chat_format.describe()} needs the special tokens {missing}, "
                "which this model does not define; pick the format that matches the model"
            )
        self.encoding = encoding
        self.chat_format = chat_format
        self.ref = ref
        self._special_tokens = specials
        # (add_generation_prompt, content_special_tokens) -> counter of plain chats (engine/message_counts), or None
        self._counters: dict[tuple[bool, str], MessageCounter | None] = {}
        self._estimate = chat_format.estimate
        self._plain_chat = chat_format.plain_chat_counter(encoding)  # templates' shape-traced counter, or None

    def encode_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: ContentSpecialTokens = "reference",
        limits: TemplateLimits | None = None,
    ) -> ChatEncoding:
        """The prompt ids of `messages` (and `tools`) in this model's chat format, the rendered text and
        the ids of each message (`ChatEncoding`). Bad input raises `ChatRequestError` naming the field."""
        parsed, parsed_tools, context = self._prepare(messages, tools, add_generation_prompt, content_special_tokens, limits, True)
        self.require_ids()
        return self.chat_format.encode(self.encoding, parsed, parsed_tools, add_generation_prompt, context)

    def require_ids(self) -> None:
        """Raise the ChatRequestError of `encode_chat` when the format only counts (openai-chat)."""
        if self.chat_format.estimate:
            raise ChatRequestError(
                f"the {self.chat_format.name} format of {self.ref or self.encoding.name} is a documented token-count "
                "rule (OpenAI does not publish the prompt layout), so it has no ids: use count_chat",
                field="model",
            )

    def count_chat(
        self,
        messages: Sequence[Any],
        tools: Sequence[Any] | None = None,
        add_generation_prompt: bool = True,
        *,
        content_special_tokens: ContentSpecialTokens = "reference",
        limits: TemplateLimits | None = None,
        per_message: bool = True,
    ) -> ChatCount:
        """`len(encode_chat(...).ids)` and the count of each message, without building the ids where
        possible. `per_message=False` skips the per-message split (for templates: no prefix renders)."""
        # A plain chat ({"role", "content"} strings, the common request) in one engine call; any other, and
        # every bad one, by the general path, which also raises the precise errors.
        if tools is None and (add_generation_prompt is True or add_generation_prompt is False) and type(content_special_tokens) is str:
            counter = self._counters.get((add_generation_prompt, content_special_tokens), _UNSET)
            if counter is _UNSET:
                counter = self._message_counter(add_generation_prompt, content_special_tokens)
            if counter is not None:
                counted = counter(messages, per_message)
                if counted is not None:
                    return chat_count(counted[0], counted[1] or [], True, self._estimate)
            elif self._plain_chat is not None and (content_special_tokens == "reference" or content_special_tokens == "refuse"):
                counted = self._plain_chat(messages, add_generation_prompt, per_message, limits)
                if counted is not None:
                    return counted
        return self._count_rendered(messages, tools, add_generation_prompt, content_special_tokens, limits, per_message)

    def _count_rendered(self, messages, tools, add_generation_prompt, content_special_tokens, limits, per_message) -> ChatCount:
        """count_chat by the general path: check the messages, render (or count) them in the format."""
        parsed, parsed_tools, context = self._prepare(
            messages, tools, add_generation_prompt, content_special_tokens, limits, per_message
        )
        result = self.chat_format.count(self.encoding, parsed, parsed_tools, add_generation_prompt, context)
        return result if per_message else ChatCount(result.total, [], result.spans_exact, result.estimate)

    def _message_counter(self, add_generation_prompt: bool, content_special_tokens: str) -> MessageCounter | None:
        """The plain-chat counter for these arguments (cached): the format's layout, plus the special-token text
        that must send content down the general path (where it would become special tokens, or be refused)."""
        if content_special_tokens not in CONTENT_SPECIAL_TOKENS:
            return None  # the general path refuses it (and nothing is cached for a made-up value)
        layout = None
        if content_special_tokens != "text" or self.chat_format.supports_text_content_rule:
            layout = self.chat_format.message_layout(self.encoding, add_generation_prompt)
        counter = None
        if layout is not None:
            refused: tuple[str, ...] = ()
            if self._special_tokens and (
                content_special_tokens == "refuse"
                or content_special_tokens == "reference" and self.chat_format.reference_content_specials
            ):
                refused = special_text_prefixes(self._special_tokens)
            forbidden = tuple(dict.fromkeys(layout.forbidden + refused))
            if "" not in forbidden and len(forbidden) <= _MAX_FORBIDDEN:
                overhead = layout.overhead
                if overhead is None:
                    overhead = self._count_rendered([], None, add_generation_prompt, content_special_tokens, None, False).total
                counter = message_counter(self.encoding, dataclasses.replace(layout, forbidden=forbidden, overhead=overhead))
        self._counters[(add_generation_prompt, content_special_tokens)] = counter
        return counter

    def _prepare(self, messages, tools, add_generation_prompt, content_special_tokens, limits, spans):
        if not isinstance(add_generation_prompt, bool):
            raise ChatRequestError(f"must be true or false, got {quoted(add_generation_prompt)}", field="add_generation_prompt")
        if content_special_tokens not in CONTENT_SPECIAL_TOKENS:
            raise ChatRequestError(
                f"must be one of {', '.join(CONTENT_SPECIAL_TOKENS)}, got {quoted(content_special_tokens)}",
                field="content_special_tokens",
            )
        parsed = parse_messages(messages)
        parsed_tools = parse_tools(tools)
        if content_special_tokens == "refuse":
            self._refuse_special_text(parsed, parsed_tools)
            content_specials = self.chat_format.reference_content_specials
        elif content_special_tokens == "text":
            if not self.chat_format.supports_text_content_rule:
                raise ChatRequestError(
                    f"{self.chat_format.describe()} renders one string in which content cannot be told apart from the "
                    "template's own text; use content_special_tokens='refuse' to keep special tokens out of content",
                    field="content_special_tokens",
                )
            content_specials = False
        else:
            content_specials = self.chat_format.reference_content_specials
        context = RenderContext(self._special_tokens, content_specials, limits or _DEFAULT_LIMITS, spans)
        return parsed, parsed_tools, context

    def _refuse_special_text(self, messages: tuple[ChatMessage, ...], tools) -> None:
        if not self._special_tokens:
            return
        search = special_token_regex(self._special_tokens).search
        for message in messages:
            fields: list[tuple[tuple, str | None]] = [(("content",), message.content), (("name",), message.name),
                                                       (("tool_call_id",), message.tool_call_id)]
            fields += [(("content", number, "text"), part) for number, part in enumerate(message.parts or ())]
            for number, call in enumerate(message.tool_calls):
                fields.append((("tool_calls", number, "function", "name"), call.name))
                fields.append((("tool_calls", number, "function", "arguments"), call.arguments))
            for path, value in fields:
                match = search(value) if value else None
                if match:
                    raise message.refuse(
                        f"contains the special token text {match.group()!r} at character {match.start()}; remove it, or "
                        "pass content_special_tokens='text' to encode it as ordinary text", *path
                    )
        for number, tool in enumerate(tools or ()):
            match = search(json.dumps(tool.raw, ensure_ascii=False))
            if match:
                raise ChatRequestError(f"contains the special token text {match.group()!r}", field=f"tools[{number}]")
