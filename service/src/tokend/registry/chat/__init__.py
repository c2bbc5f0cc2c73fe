"""Chat formats: the exact prompt tokens of OpenAI-shaped messages and tools, per model version.

A model version may carry a chat format in its manifest (`ChatFormatSpec`): a built-in (`harmony`,
`openai-chat`, `chatml`, `llama3`, `mistral`) or a Jinja2 template rendered as transformers renders it,
in a sandbox with time and size limits. A loaded model encodes and counts chats with it (here a registry
directory holding Qwen3 with the `chatml` format; runnable examples: chat_format, template_format):

    model = Registry.open("models/").load("qwen3")
    model.encode_chat([{"role": "user", "content": "Hi"}]).ids
    # [151644, 872, 198, 13048, 151645, 198, 151644, 77091, 198]
    model.count_chat(messages, tools=tools).per_message
    # [tokens of messages[0], tokens of messages[1], ...]; what no message owns: .format_overhead

Modules: messages (checks), segments (ids and spans), chat_format (ChatFormat, ChatEncoder), text_builder,
one module per built-in, spec (the manifest field), gguf_template (a GGUF file's template, for the GGUF
importer); templates: template_format (a template as a chat format), sandbox (the environment a template
renders in) with its limits (template_limits: the bounds; template_budget: one render's time and held
values; template_sizes: the size of what it builds; template_filters: one filter call; template_code_hooks:
literals, loops and joins), template_trace, template_layout and template_count_plan (a traced render, the
layout of a chat shape, its count).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokend.registry.chat.chat_format import CONTENT_SPECIAL_TOKENS, ChatEncoder, ChatFormat, ContentSpecialTokens
    from tokend.registry.chat.gguf_template import chat_format_from_gguf
    from tokend.registry.chat.messages import ChatMessage, ToolCall, ToolDefinition, parse_messages, parse_tools
    from tokend.registry.chat.segments import ChatCount, ChatEncoding
    from tokend.registry.chat.spec import (
        BUILTIN_CHAT_FORMATS,
        ChatFormatSpec,
        build_chat_format,
        builtin_chat_format,
        chat_format_from_template,
        chat_format_from_tokenizer_config,
    )
    from tokend.registry.chat.template_limits import TemplateClock, TemplateLimits

# Each name is imported from its module when first used: reading a manifest (every model load, every
# `tokend.get_encoding`) needs only `spec`, not the renderers.
_MODULES = {
    "CONTENT_SPECIAL_TOKENS": "chat_format", "ChatEncoder": "chat_format", "ChatFormat": "chat_format",
    "ContentSpecialTokens": "chat_format", "chat_format_from_gguf": "gguf_template", "ChatMessage": "messages",
    "ToolCall": "messages", "ToolDefinition": "messages", "parse_messages": "messages", "parse_tools": "messages",
    "TemplateClock": "template_limits", "TemplateLimits": "template_limits",
    "ChatCount": "segments", "ChatEncoding": "segments",
    "BUILTIN_CHAT_FORMATS": "spec", "ChatFormatSpec": "spec", "build_chat_format": "spec",
    "builtin_chat_format": "spec", "chat_format_from_template": "spec", "chat_format_from_tokenizer_config": "spec",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BUILTIN_CHAT_FORMATS",
    "CONTENT_SPECIAL_TOKENS",
    "ChatCount",
    "ChatEncoder",
    "ChatEncoding",
    "ChatFormat",
    "ChatFormatSpec",
    "ChatMessage",
    "ContentSpecialTokens",
    "TemplateClock",
    "TemplateLimits",
    "ToolCall",
    "ToolDefinition",
    "build_chat_format",
    "builtin_chat_format",
    "chat_format_from_gguf",
    "chat_format_from_template",
    "chat_format_from_tokenizer_config",
    "parse_messages",
    "parse_tools",
]
