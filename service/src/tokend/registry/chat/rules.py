"""Checks the built-in formats share: which roles and fields a format renders, refused with the field named.

    >>> from tokend.registry.chat.messages import parse_messages
    >>> user, tool = parse_messages([{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42"}])
    >>> check_message(user, "llama3", roles=("system", "user", "assistant"), tool_calls=False)
    >>> check_message(tool, "llama3", roles=("system", "user", "assistant"), tool_calls=False)
    Traceback (most recent call last):
    tokend.errors.ChatRequestError: messages[1].role: role 'tool' is not one of system, user, assistant (the roles ...
"""

from __future__ import annotations

from tokend.errors import ChatRequestError, quoted
from tokend.registry.chat.messages import ChatMessage, ToolDefinition

__all__ = ["check_message", "refuse_tools"]


def check_message(
    message: ChatMessage,
    format_name: str,
    *,
    roles: tuple[str, ...],
    tool_calls: bool,
    content_required: bool = False,
) -> None:
    """Refuse what `format_name` cannot render: an unknown role, tool calls, keys the format would drop."""
    if message.role not in roles:
        raise message.refuse(f"role {quoted(message.role)} is not one of {', '.join(roles)} (the roles of the {format_name} format)", "role")
    if message.extra_keys:
        raise message.refuse(
            f"the {format_name} format does not render {', '.join(map(quoted, message.extra_keys[:8]))}"
            f"{f' (and {len(message.extra_keys) - 8:,} more keys)' if len(message.extra_keys) > 8 else ''}; "
            "remove it, or publish the model's own chat template if it uses it",
            message.extra_keys[0][:100],
        )
    if message.tool_calls and not tool_calls:
        raise message.refuse(f"the {format_name} format has no tool calls", "tool_calls")
    if content_required and message.content is None and message.parts is None and not message.tool_calls:
        raise message.refuse("is required (a string or a list of text parts)", "content")


def refuse_tools(tools: tuple[ToolDefinition, ...] | None, format_name: str, hint: str = "") -> None:
    if tools:
        raise ChatRequestError(f"the {format_name} format has no tool definitions{hint}", field="tools")
