"""`openai-chat`: the token count OpenAI documents for chat models on cl100k_base / o200k_base — an estimate.

OpenAI does not publish how its API lays out a chat prompt. Its cookbook ("How to count tokens with
tiktoken", `num_tokens_from_messages`) gives the rule for gpt-3.5-turbo-0125, gpt-4, gpt-4o and
gpt-4o-mini: 3 tokens per message, plus the tokens of every value in the message (role, content, name),
plus 1 for a name, plus 3 for the reply's priming (`<|start|>assistant<|message|>`). This format counts
exactly that rule (`count_chat(...).estimate` is True) and has no ids: `encode_chat` refuses.

    >>> from tokend import get_encoding
    >>> from tokend.registry.chat.chat_format import ChatEncoder
    >>> encoder = ChatEncoder(get_encoding("cl100k_base"), OpenAIChatFormat(), ref="cl100k_base@1")
    >>> encoder.count_chat([{"role": "user", "content": "Hello"}])    # 3 + "user" (1) + "Hello" (1) + 3
    ChatCount(total=8, per_message=[5], spans_exact=True, estimate=True)
    >>> encoder.encode_chat([{"role": "user", "content": "Hello"}])
    Traceback (most recent call last):
    tokend.errors.ChatRequestError: model: the openai-chat format of cl100k_base@1 is a documented token-count rule ...

Differences from the cookbook function, all where it cannot answer: text parts are joined with "\\n";
null content counts 0; special-token text in a value is counted as ordinary text (tiktoken's default
would raise); `add_generation_prompt=False` leaves out the reply's 3 tokens. Tools, tool calls and tool
results are refused (the cookbook's tool rule is a different, model-specific estimate).
"""

from __future__ import annotations

from tokend.engine.message_counts import MessageLayout
from tokend.engine.text_parts import count_parts
from tokend.registry.chat.chat_format import ChatFormat, RenderContext
from tokend.registry.chat.rules import check_message, refuse_tools
from tokend.registry.chat.segments import ChatCount, RenderedChat

__all__ = ["OpenAIChatFormat", "TOKENS_PER_MESSAGE", "TOKENS_PER_NAME", "REPLY_PRIMING_TOKENS"]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


class OpenAIChatFormat(ChatFormat):
    name = "openai-chat"
    estimate = True

    def render(self, messages, tools, add_generation_prompt, context: RenderContext) -> RenderedChat:
        raise NotImplementedError("openai-chat is a counting rule; ChatEncoder refuses encode_chat for it")

    def message_layout(self, encoding, add_generation_prompt: bool) -> MessageLayout:
        # the rule for a message without a name: its role and its content counted apart, plus 3
        return MessageLayout({role: ("", TOKENS_PER_MESSAGE + encoding.count_ordinary(role), True) for role in _ROLES})

    def count(self, encoding, messages, tools, add_generation_prompt, context: RenderContext) -> ChatCount:
        refuse_tools(tools, self.name, " (OpenAI's tool prompt layout is not published)")
        # Every value of a message counted on its own (the cookbook's rule), all in one engine call: one run
        # of parts per message, then the rule's constants.
        parts: list[str] = []
        ends: list[int] = []
        names = 0
        for message in messages:
            _, role, content, message_parts, name, tool_calls, _, extra_keys, _ = message
            if role not in _ROLES or extra_keys or tool_calls:
                check_message(message, self.name, roles=_ROLES, tool_calls=False)
            parts += (role, content if message_parts is None and content is not None else message.text)
            if name is not None:
                parts.append(name)
            ends.append(len(parts))
        counts = count_parts(encoding, parts, ends)
        per_message = [
            count + TOKENS_PER_MESSAGE + (TOKENS_PER_NAME if message.name is not None else 0)
            for count, message in zip(counts, messages)
        ]
        total = sum(per_message) + (REPLY_PRIMING_TOKENS if add_generation_prompt else 0)
        return ChatCount(total, per_message if context.spans else [], estimate=True)


_ROLES = ("system", "developer", "user", "assistant")
