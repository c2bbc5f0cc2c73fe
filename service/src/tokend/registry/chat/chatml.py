"""`chatml`: `<|im_start|>role\\ncontent<|im_end|>\\n` turns, with tools as Qwen publishes them.

    <|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n

The reference is Qwen3's published chat template (Qwen/Qwen3-0.6B `tokenizer_config.json`, transformers):
this format renders what that template renders for OpenAI-shaped messages, and is tokenized as
transformers tokenizes it (the whole string, every added token recognised). That includes Qwen3's rules:
- tools: a system turn listing each tool as JSON inside <tools></tools>, after the system message if any;
- tool calls: `<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>` (string arguments as given,
  objects as JSON); consecutive tool results share one user turn, each in <tool_response></tool_response>;
- reasoning: in assistant turns after the last real user message, a `<think>` block (empty when there is
  no reasoning) precedes the content of the last message; `<think>...</think>` inside assistant content is
  split out as Qwen3 does;
- option `enable_thinking: false` appends the empty think block to the generation prompt.
For ChatML models without these conventions, publish the model's own template.
Roles: system, user, assistant, tool. `name` is not rendered. Null content renders as "" (the template
itself cannot take null); multi-part content is joined with "\\n".
"""

from __future__ import annotations

import json
from typing import Any

from tokend.engine.message_counts import MessageLayout
from tokend.errors import ChatRequestError
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.messages import ChatMessage, ToolDefinition
from tokend.registry.chat.rules import check_message
from tokend.registry.chat.segments import RenderedChat, SpecialText
from tokend.registry.chat.text_builder import TextBuilder

__all__ = ["ChatmlFormat"]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
_TOOLS_INTRO = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_OUTRO = (
    "\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n'
    "</tool_call>" + IM_END + "\n"
)


class ChatmlFormat(ChatFormat):
    name = "chatml"
    reference_content_specials = True  # transformers tokenizes the rendered string

    def __init__(self, *, enable_thinking: bool | None = None) -> None:
        if enable_thinking is not None and not isinstance(enable_thinking, bool):
            raise ChatRequestError(f"must be true, false or absent, got {enable_thinking!r}", field="chat_format.options.enable_thinking")
        self.enable_thinking = enable_thinking

    def required_special_tokens(self) -> frozenset[str]:
        return frozenset({IM_START, IM_END})

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout:
        # What _render_plain builds for a message: [START, role + "\n" + content, END, "\n"]. A last assistant
        # message (Qwen3's think block) and "</think>" in content (split out) take the general path.
        constant = 2 + encoding.count_ordinary("\n")
        roles = {role: (role + "\n", constant, role != "assistant") for role in _PLAIN_ROLES}
        return MessageLayout(roles, forbidden=("</think>",))

    def render(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        if not tools and (self.enable_thinking is not False or not add_generation_prompt):
            rendered = self._render_plain(messages, add_generation_prompt, context)
            if rendered is not None:
                return rendered
        return self._render_built(messages, tools, add_generation_prompt, context)

    @staticmethod
    def _render_plain(messages: tuple[ChatMessage, ...], add_generation_prompt: bool, context: RenderContext) -> RenderedChat | None:
        """The common chat — system, user and assistant text turns, no tools, no tool calls, no reasoning, no
        special-token text in content — built as parts directly: [START, "role\\n" + content, END, "\\n"] per
        message, what `_render_built` gives it through TextBuilder (a test holds the two equal). None for
        any other chat, which `_render_built` renders."""
        scan = TextBuilder(context.special_tokens, content_specials=context.content_specials).content_scanner()
        parts: list[str] = []
        ends: list[int] = []
        owners: list[int | None] = []
        count = len(messages)
        for message in messages:
            index, role, content, message_parts, _, tool_calls, _, extra_keys, _ = message
            if role not in _PLAIN_ROLES or extra_keys or tool_calls:
                return None
            text = content if message_parts is None and content is not None else message.text
            if scan is not None and scan(text):
                return None
            if role == "assistant":
                # Qwen3's reasoning rules: split-out <think> blocks, and the think block of a last assistant
                # turn after the last user query.
                if "<" in text and "</think>" in text or index == count - 1 and index > _last_query_index(messages):
                    return None
                parts += (_START, "assistant\n" + text, _END, "\n")
            else:
                parts += (_START, role + "\n" + text, _END, "\n")
            ends.append(len(parts))
            owners.append(index)
        if add_generation_prompt:
            parts += (_START, "assistant\n")
            ends.append(len(parts))
            owners.append(None)
        return RenderedChat(parts, ends, owners, count)

    def _render_built(
        self,
        messages: tuple[ChatMessage, ...],
        tools: tuple[ToolDefinition, ...] | None,
        add_generation_prompt: bool,
        context: RenderContext,
    ) -> RenderedChat:
        for message in messages:
            check_message(message, self.name, roles=("system", "user", "assistant", "tool"), tool_calls=True)
        builder = TextBuilder(context.special_tokens, content_specials=context.content_specials)
        add = builder.add
        template = builder.template
        first_is_system = bool(messages) and messages[0].role == "system"
        if tools:
            owner = 0 if first_is_system else None
            template(f"{IM_START}system\n", owner)
            if first_is_system:
                add(messages[0].text, 0, content=True)
                template("\n\n", 0)
            template(_TOOLS_INTRO, owner)
            for tool in tools:
                template("\n", owner)
                add(json.dumps(tool.raw, ensure_ascii=False), owner, content=True)
            template(_TOOLS_OUTRO, owner)
        elif first_is_system:
            template(f"{IM_START}system\n", 0)
            add(messages[0].text, 0, content=True)
            template(f"{IM_END}\n", 0)
        last_query = _last_query_index(messages)
        for position, message in enumerate(messages):
            owner = message.index
            last = position == len(messages) - 1
            if message.role == "user" or (message.role == "system" and position > 0):
                template(f"{IM_START}{message.role}\n", owner)
                add(message.text, owner, content=True)
                template(f"{IM_END}\n", owner)
            elif message.role == "assistant":
                self._assistant(builder, message, after_last_query=position > last_query, last=last)
            elif message.role == "tool":
                if position == 0 or messages[position - 1].role != "tool":
                    template(f"{IM_START}user", owner)
                template("\n<tool_response>\n", owner)
                add(message.text, owner, content=True)
                template("\n</tool_response>", owner)
                if last or messages[position + 1].role != "tool":
                    template(f"{IM_END}\n", owner)
        if add_generation_prompt:
            template(f"{IM_START}assistant\n", None)
            if self.enable_thinking is False:
                template("<think>\n\n</think>\n\n", None)
        return builder.build(message_count=len(messages))

    @staticmethod
    def _assistant(builder: TextBuilder, message: ChatMessage, *, after_last_query: bool, last: bool) -> None:
        add, template, owner = builder.add, builder.template, message.index
        content, reasoning = message.text, ""
        if "</think>" in content:
            reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
            content = content.split("</think>")[-1].lstrip("\n")
        template(f"{IM_START}assistant\n", owner)
        if after_last_query and (last or reasoning):
            template("<think>\n", owner)
            add(reasoning.strip("\n"), owner, content=True)
            template("\n</think>\n\n", owner)
            add(content.lstrip("\n"), owner, content=True)
        else:
            add(content, owner, content=True)
        for number, call in enumerate(message.tool_calls):
            if number > 0 or content:
                template("\n", owner)
            template('<tool_call>\n{"name": "', owner)
            add(call.name, owner, content=True)
            template('", "arguments": ', owner)
            add(call.arguments, owner, content=True)
            template("}\n</tool_call>", owner)
        template(f"{IM_END}\n", owner)


def _last_query_index(messages: tuple[ChatMessage, ...]) -> int:
    """Qwen3's `ns.last_query_index`: the last user message that is not a wrapped tool response."""
    for position in range(len(messages) - 1, -1, -1):
        message = messages[position]
        text: Any = message.text
        if message.role == "user" and not (text.startswith("<tool_response>") and text.endswith("</tool_response>")):
            return position
    return len(messages) - 1


_PLAIN_ROLES = ("system", "user", "assistant")
_START, _END = SpecialText(IM_START), SpecialText(IM_END)
