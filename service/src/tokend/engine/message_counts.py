"""A plain chat — a list of `{"role": str, "content": str}` dicts — counted in one engine call, by a layout
that says what each role costs around its text. This is how `count_chat` counts the common request without
rendering it (registry/chat/chat_format.py; each built-in format gives its layout).

    >>> from tokend import get_encoding
    >>> layout = MessageLayout(roles={"user": ("user: ", 2, True)}, overhead=1)
    >>> count = message_counter(get_encoding("cl100k_base"), layout)
    >>> count([{"role": "user", "content": "Hi"}], True)        # 1 + (2 + "user: Hi")
    (6, [5])
    >>> count([{"role": "user", "content": "Hi"}], False)
    (6, None)
    >>> count([{"role": "tool", "content": "42"}], True) is None
    True

A message counts `constant + count_ordinary(prefix + content)` for its role's `(prefix, constant,
may_be_last)`; the chat counts `overhead` (the tokens no message owns: a format's own header, the
generation prompt) plus its messages. The answer is None — "render this chat the general way" — for anything
else: a message that is not an exact dict with exactly those two keys as exact str, a role the layout lacks,
a role that may not come last in the last message, content holding one of `forbidden` (special-token text,
which a format may have to cut out, or text a format treats specially such as "</think>"), text that is not
valid UTF-8, messages given as anything but a list, an engine without the native core (other families, a
normalizer, added tokens). With `strip`, content loses its surrounding whitespace first (as `str.strip`).
The general path stays the authority: it is exact for every chat and raises the precise error for a bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tokend.engine.text_parts import native_core

__all__ = ["MessageLayout", "MessageCounter", "message_counter"]

# (messages, per_message) -> (total, tokens of each message or None), or None: not a plain chat
MessageCounter = Callable[[Any, bool], "tuple[int, list[int] | None] | None"]


@dataclass(frozen=True)
class MessageLayout:
    """What each plain message costs around its text, by role."""

    roles: Mapping[str, tuple[str, int, bool]]  # role -> (prefix joined to the content, constant tokens, may be last)
    first_roles: Mapping[str, tuple[str, int, bool]] | None = None  # the same for the first message (None: roles)
    forbidden: tuple[str, ...] = ()  # content holding any of these is not plain
    strip: bool = False  # content is stripped of surrounding whitespace before the prefix is joined
    overhead: int = 0  # tokens of the chat that no message owns


def message_counter(encoding: Any, layout: MessageLayout) -> MessageCounter | None:
    """`layout` bound to `encoding`'s native core, as one C-level callable (no Python frame per chat: a short
    chat costs ~10 us to count), or None when the encoding has no such core."""
    core = native_core(encoding)
    if core is None:
        return None
    first_roles = None if layout.first_roles is None else dict(layout.first_roles)
    return partial(core.count_messages, dict(layout.roles), first_roles, tuple(layout.forbidden), layout.strip, layout.overhead)
