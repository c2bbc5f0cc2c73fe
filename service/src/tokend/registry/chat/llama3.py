"""`llama3`: the Meta Llama 3 Instruct format, as its published template renders it.

    <|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n

Exactly what the chat template of Meta-Llama-3-8B-Instruct renders (each message's content stripped of
surrounding whitespace, BOS before the first message) and what transformers tokenizes from it. Roles:
system, user, assistant; `name` is not rendered (the template ignores it); multi-part content is joined with
"\n" (as vLLM flattens it; the template itself cannot take parts). No tools: Llama 3.1+ tool calling has its
own template — publish the model's template for it.
"""

from __future__ import annotations

from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.rules import check_message, refuse_tools
from tokend.registry.chat.segments import RenderedChat
from tokend.registry.chat.text_builder import TextBuilder

__all__ = ["Llama3Format"]

BOS, START_HEADER, END_HEADER, EOT = "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"


class Llama3Format(ChatFormat):
    name = "llama3"
    reference_content_specials = True  # transformers tokenizes the rendered string

    def required_special_tokens(self) -> frozenset[str]:
        return frozenset({BOS, START_HEADER, END_HEADER, EOT})

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        refuse_tools(tools, self.name, " (Llama 3.1+ tool calling: publish the model's own chat template)")
        builder = TextBuilder(context.special_tokens, content_specials=context.content_specials)
        for message in messages:
            check_message(message, self.name, roles=("system", "user", "assistant"), tool_calls=False, content_required=True)
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
