"""Jinja2 chat templates (a model's `tokenizer_config.json` "chat_template", GGUF `tokenizer.chat_template`),
rendered and tokenized the way transformers' `apply_chat_template(tokenize=True)` does.

    >>> template_source = ("{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n"
    ...                    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")
    >>> chat_format = TemplateChatFormat(template_source, {"bos_token": "<|endoftext|>"})
    >>> from tokend import Encoding, get_encoding
    >>> from tokend.registry.chat.chat_format import ChatEncoder
    >>> base = get_encoding("cl100k_base")        # + ChatML's tokens (see chat_format)
    >>> encoding = Encoding("cl100k_im", pat_str=base.pattern, mergeable_ranks=base.mergeable_ranks,
    ...                     special_tokens={**base.special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265})
    >>> chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    >>> result = ChatEncoder(encoding, chat_format).encode_chat(chat, add_generation_prompt=False)
    >>> result.text
    '<|endoftext|><|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\nHello!<|im_end|>\\n'
    >>> result.ids
    [100257, 100264, 882, 198, 13347, 100265, 198, 100264, 78191, 198, 9906, 0, 100265, 198]
    >>> result.message_spans, result.spans_exact      # the BOS belongs to no message
    ([(1, 7), (7, 14)], True)

The template sees what transformers passes: `messages` (the caller's dicts, unchanged), `tools` (the tool
dicts, or None), `documents` (None), `add_generation_prompt`, and the template variables stored with the
format (the tokenizer's special-token map: `bos_token`, `eos_token`, ...; any other fixed variable such as
`date_string`). The rendered string is tokenized with every special token of the model recognised,
content included (see chat_format for the consequence and the "refuse" rule).

Per-message spans: the text of message k starts where the rendering of `messages[:k]` (without
generation prompt) ends, as transformers' own per-message helper computes it. That needs one render per
message. When a prefix does not render as the start of the whole (a template that renders a message
differently once later messages follow, e.g. Qwen3's reasoning rule for the last assistant turn, or one
that refuses an unfinished conversation), that boundary is unknown: the message's ids count towards the
message before it and `spans_exact` is False (for message 0 the boundary is then the start of the text, so
a preamble counts towards it). Ids and totals never depend on the spans.

The prefix renders cost the square of the chat's length (300 messages of Qwen3 with tools: 1.4 s of renders
for a 10 ms render of the whole), so they run only when the work they would do, estimated from the render of
the whole, is within `MAX_PREFIX_TICKS`, and only within `PREFIX_TIME_SHARE` of the time that render left.
Past either, message 0 still starts where the empty chat's render ends (the template's header alone), and
every other boundary is where the template's loop reached the message in the render of the whole
(message_positions); `spans_exact` is then False, whatever those boundaries are, and the chat is not refused
for its spans.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from tokend.errors import ChatTemplateError
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.message_positions import PREFIX_TIME_SHARE, RECORDED_FROM_MESSAGES, MessagePositions
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.sandbox import CompiledTemplate, TemplateLimits, compile_template, render_template, renders_in_turn
from tokend.registry.chat.segments import RenderedChat
from tokend.registry.chat.template_layout import TemplateLayouts, owned_ranges
from tokend.registry.chat.text_builder import TextBuilder

__all__ = ["TemplateChatFormat", "candidate_boundaries"]


class TemplateChatFormat(ChatFormat):
    name = "template"
    reference_content_specials = True
    supports_text_content_rule = False

    def __init__(self, source: str, variables: Mapping[str, Any] | None = None) -> None:
        self.compiled: CompiledTemplate = compile_template(source)
        self.variables = dict(variables or {})
        self.layouts = TemplateLayouts(self)  # plain chats by their shape's traced layout (template_layout)

    def describe(self) -> str:
        return "template"

    def plain_chat_counter(self, encoding):
        return self.layouts.counter(encoding)

    def _render(self, messages, tools, add_generation_prompt: bool, limits: TemplateLimits, tracer=None, positions=None) -> str:
        variables = {
            **self.variables,
            "messages": messages,
            "tools": tools,
            "documents": None,
            "add_generation_prompt": add_generation_prompt,
        }
        return render_template(self.compiled, variables, limits, tracer, positions)

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        raw_messages = [message.raw for message in messages]
        raw_tools = None if tools is None else [tool.raw for tool in tools]
        limits = context.limits.start()  # one time budget for the render and every prefix render below
        if tools is None and context.content_specials:
            rendered = self.layouts.rendered(raw_messages, add_generation_prompt, context.special_tokens, limits, context.spans)
            if rendered is not None:
                return rendered
        count = len(messages)
        spans = context.spans and count > 0
        # (a short chat's prefix renders are cheap: its whole renders without recording, ~10% faster)
        positions = MessagePositions(raw_messages) if spans and count >= RECORDED_FROM_MESSAGES else None
        with renders_in_turn(limits):  # every render below in one turn of the process's renders
            full = self._render(raw_messages, raw_tools, add_generation_prompt, limits, positions=positions)
            if spans:
                rendered, verified = self._boundaries(full, raw_messages, raw_tools, add_generation_prompt, limits, positions)
                if not verified and positions is None:  # a short chat whose prefix renders ran out of their time
                    positions = self._recorded(raw_messages, raw_tools, add_generation_prompt, limits)
        builder = TextBuilder(context.special_tokens, content_specials=True)
        if not spans:
            builder.add_rendered(full, None)
            return builder.build(message_count=count, spans_exact=not count)
        if verified:
            boundaries = [rendered[k] for k in range(count + 1)]
        else:  # the loops' boundaries, where no prefix was rendered
            boundaries = [None] * (count + 1)
            if positions is not None:
                boundaries = candidate_boundaries(full, positions, add_generation_prompt, context.special_tokens)
            for k, boundary in rendered.items():
                boundaries[k] = boundary
        ranges, exact = owned_ranges(full, boundaries, count)
        for start, end, owner in ranges:
            builder.add_rendered(full[start:end], owner)
        return builder.build(message_count=count, spans_exact=exact and verified)

    def _recorded(self, raw_messages: list, raw_tools: Any, add_generation_prompt: bool, limits: TemplateLimits) -> MessagePositions | None:
        """The whole rendered again, recording its loops (message_positions); None if that does not fit the time left
        (every boundary not rendered is then unknown)."""
        positions = MessagePositions(raw_messages)
        try:
            self._render(raw_messages, raw_tools, add_generation_prompt, limits, positions=positions)
        except ChatTemplateError as error:
            if error.reason == "time_limit":
                return None
            raise
        return positions

    def _boundaries(self, full: str, raw_messages: list, raw_tools: Any, add_generation_prompt: bool, limits: TemplateLimits,
                    positions: MessagePositions | None) -> tuple[dict[int, int | None], bool]:
        """({k: boundary}, whether every k): boundary k is where message k starts (k < count) / where the last one
        ends (k == count), by the render of `messages[:k]` (None where that is not the start of the whole).
        Every k when their renders' work, estimated from the whole's (MessagePositions.prefix_renders_fit),
        is within MAX_PREFIX_TICKS and PREFIX_TIME_SHARE of the time left, and they finish within that share;
        else the first (the empty chat: the template's header alone), or those rendered until the share ran out,
        for the caller to complete from the loops of the whole's render. (Not the last as well: the whole's
        render again would double the cost of a long chat's counts, which a request's conversations share.)
        Without `positions` (a short chat) every k is tried, within the share."""
        count = len(raw_messages)
        # (of the wall time to the call's deadline when that comes first: the whole's render stopped there too)
        share = limits.share(PREFIX_TIME_SHARE)
        every = positions is None or positions.prefix_renders_fit(add_generation_prompt, share)
        boundaries: dict[int, int | None] = {}
        for k in range(count + 1) if every else (0,):
            if k == count and not add_generation_prompt:
                boundaries[k] = len(full)
                continue
            try:
                prefix = self._render(raw_messages[:k], raw_tools, False, share)
            except ChatTemplateError as error:
                if error.reason == "time_limit":  # the share spent (a loaded worker): the ids are known, spans by loops
                    return boundaries, False
                if error.reason in ("size_limit", "security"):
                    raise
                boundaries[k] = None  # the template refuses this unfinished conversation
                continue
            boundaries[k] = len(prefix) if full.startswith(prefix) else None
        return boundaries, every


def candidate_boundaries(full: str, positions: MessagePositions, add_generation_prompt: bool,
                         special_tokens: frozenset[str]) -> list[int | None]:
    """Boundaries where the template's loops reached each message in the render of the whole (message_positions),
    None where none did or where one would fall inside a special token of the text (the ids never depend on
    the spans); without a generation prompt the last message ends where the text does, as in the prefix renders."""
    boundaries = positions.candidates()
    if not add_generation_prompt:
        boundaries[-1] = len(full)
    if special_tokens and any(boundary for boundary in boundaries):
        builder = TextBuilder(special_tokens, content_specials=True)
        builder.add_rendered(full, None)
        inside: list[tuple[int, int]] = []
        offset = 0
        for part in builder.build(message_count=0).parts:
            if type(part) is not str:
                inside.append((offset, offset + len(part)))
            offset += len(part)
        starts = [start for start, _ in inside]
        for k, boundary in enumerate(boundaries):
            if boundary is not None:
                at = bisect.bisect_left(starts, boundary) - 1  # the last token starting before the boundary
                if at >= 0 and inside[at][1] > boundary:
                    boundaries[k] = None
    return boundaries
