"""`llama3`: the Meta Llama 3 Instruct format, as its published template renders it.

    <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n

Exactly what the chat template of Meta-Llama-3-8B-Instruct renders (each message's content stripped of
surrounding whitespace, BOS before the first message) and what transformers tokenizes from it. Roles:
system, user, assistant; `name` is not rendered (the template ignores it); multi-part content is joined with
"\n" (as vLLM flattens it; the template itself cannot take parts). No tools: Llama 3.1+ tool calling has its
own template — publish the model's template for it.
"""

from __future__ import annotations

from tokend.engine.message_counts import MessageLayout
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.rules import check_message, refuse_tools
from tokend.registry.chat.segments import RenderedChat, SpecialText
from tokend.registry.chat.text_builder import TextBuilder

__all__ = ["Llama3Format"]

BOS, START_HEADER, END_HEADER, EOT = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"


class Llama3Format(ChatFormat):
    name = "llama3"
    reference_content_specials = True  # transformers tokenizes the rendered string

    def required_special_tokens(self) -> frozenset[str]:
        return frozenset({BOS, START_HEADER, END_HEADER, EOT})

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout:
        # [BOS (first message only), START, role, END, "\n\n" + content.strip(), EOT], as render builds it
        roles = {role: ("\n\n", 3 + encoding.count_ordinary(role), True) for role in _ROLES}
        first_roles = {role: (prefix, constant + 1, True) for role, (prefix, constant, _) in roles.items()}
        return MessageLayout(roles, first_roles, strip=True)

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        refuse_tools(tools, self.name, " (Llama 3.1+ tool calling: publish the model's own chat template)")
        builder = TextBuilder(context.special_tokens, content_specials=context.content_specials)
        scan = builder.content_scanner()
        # Every run of text lies between two of the format's special tokens, so the parts are built directly:
        # [START, role, END, "\n\n" + content, EOT] per message, what TextBuilder would join (it is used
        # only for content with special-token text in it, which the reference rule cuts out).
        parts: list[str] = []
        ends: list[int] = []
        owners: list[int | None] = []
        for message in messages:
            index, role, content, message_parts, _, tool_calls, _, extra_keys, _ = message
            if role not in _ROLES or extra_keys or tool_calls or message_parts is None and content is None:
                check_message(message, self.name, roles=_ROLES, tool_calls=False, content_required=True)
            text = "\n\n" + (content if message_parts is None else message.text).strip()
            if scan is not None and scan(text):
                return self._render_scanned(messages, add_generation_prompt, builder)
            if index == 0:
                parts.append(_BOS)
            parts += (_START, role, _END, text, _EOT)
            ends.append(len(parts))
            owners.append(index)
        if add_generation_prompt:
            parts += (_START, "assistant", _END, "\n\n")
            ends.append(len(parts))
            owners.append(None)
        return RenderedChat(parts, ends, owners, len(messages))

    @staticmethod
    def _render_scanned(messages: tuple[ChatMessage, ...], add_generation_prompt: bool, builder: TextBuilder) -> RenderedChat:
        """The same, through TextBuilder, for a chat whose content holds special-token text."""
        for message in messages:
            owner = message.index
            if owner == 0:
                builder.token(BOS, owner)
            builder.token(START_HEADER, owner)
            builder.add(message.role, owner)
            builder.token(END_HEADER, owner)
            builder.add("\n\n", owner)
            builder.add(message.text.strip(), owner, content=True)
            builder.token(EOT, owner)
        if add_generation_prompt:
            builder.token(START_HEADER, None)
            builder.add("assistant", None)
            builder.token(END_HEADER, None)
            builder.add("\n\n", None)
        return builder.build(message_count=len(messages))


_ROLES = ("system", "user", "assistant")
_BOS, _START, _END, _EOT = map(SpecialText, (BOS, START_HEADER, END_HEADER, EOT))
