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

A message counts `constant + count_ordinary(prefix + content + suffix)` for its role's `(prefix, constant,
may_be_last)` or `(prefix, constant, may_be_last, suffix, flags)` — where the encoding's split provably cuts
between a prefix ending in a newline and the content (engine/newline_boundary), `message_counter` counts
the prefix once when it binds the layout and the walk counts the content alone (`ROLE_PREFIX_APART`); the chat counts `overhead` (the tokens no
message owns: a format's own header, the generation prompt) plus its messages. Flags (`ROLE_*`): trailing
spaces cut from the content, empty content not plain, a message right after one of the same role not plain
(formats that merge such runs). With `system_prompt`, a first message of that role is not counted on its
own but joined before the content of another message (mistral v1-v3). The answer is None — "render this
chat the general way" — for anything else: a message that is not an exact dict with exactly those two keys as exact str, a role the layout lacks,
a role that may not come last in the last message, content holding one of `forbidden` (special-token text,
which a format may have to cut out, or text a format treats specially such as "</think>"), text that is not
valid UTF-8, messages given as anything but a list, an empty list (the format's own answer: its header
alone, or an error). With `strip`, content loses its surrounding whitespace first (as `str.strip`). The
general path stays the authority: it is exact for every chat and raises the precise error for a bad one.

Which encodings: the byte-level `Encoding` whose core splits (no prefix space), and the native
`SentencePieceEncoding` (each text its own sentence, as `count_ordinary` counts it). An NFC normalizer
(Hugging Face files, e.g. Qwen 3's) is fine for text already in NFC — the core then counts what
`count_ordinary` counts — and text that is not sends the chat down the general path
(`unicodedata.is_normalized`, only for text with a code point from U+0100 up). Hugging Face added tokens
that are not special are found in any text, so content holding one is not plain either. Anything else
(another normalizer, a Python split, a reference encoder) has no counter.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from tokend.engine._native import plain_message_bytes as _plain_message_bytes
from tokend.engine.newline_boundary import newline_joining
from tokend.engine.text_parts import native_core

__all__ = [
    "MessageLayout",
    "MessageCounter",
    "message_counter",
    "plain_message_bytes",
    "ROLE_RSTRIP_SPACES",
    "ROLE_NOT_EMPTY",
    "ROLE_NOT_REPEATED",
    "ROLE_PREFIX_APART",
]

# Role flags, as native/message_counts.h defines them.
ROLE_RSTRIP_SPACES = 1  # the content loses trailing " " (mistral's assistant turns)
ROLE_NOT_EMPTY = 2  # empty content is not plain
ROLE_NOT_REPEATED = 4  # a message right after one of the same role is not plain (the format merges the run)
# the prefix's tokens counted once and the content alone where the split provably cuts between them (set by
# message_counter from engine/newline_boundary's rule, not by a format)
ROLE_PREFIX_APART = 8

# (messages, per_message) -> (total, tokens of each message or None), or None: not a plain chat
MessageCounter = Callable[[Any, bool], "tuple[int, list[int] | None] | None"]


@dataclass(frozen=True)
class MessageLayout:
    """What each plain message costs around its text, by role."""

    # role -> (prefix joined to the content, constant tokens, may be last[, suffix joined after it, ROLE_* flags])
    roles: Mapping[str, tuple]
    first_roles: Mapping[str, tuple] | None = None  # the same for the first message (None: roles)
    forbidden: tuple[str, ...] = ()  # content holding any of these is not plain
    strip: bool = False  # content is stripped of surrounding whitespace before the prefix is joined
    overhead: int | None = None  # tokens of the chat that no message owns (None: 0; for a ChatFormat: its empty chat's)
    # (role, separator, target role, last): a first message of `role` is a system prompt, joined (+ separator)
    # before the content of the first (last: the last) message of the target role; it counts 0 itself
    system_prompt: tuple[str, str, str, bool] | None = None


def message_counter(encoding: Any, layout: MessageLayout) -> MessageCounter | None:
    """`layout` bound to `encoding`'s native core, as one C-level callable (no Python frame per chat: a short
    chat costs ~10 us to count), or None when the encoding has no such core."""
    path = _text_path(encoding)
    if path is None:
        return None
    core, normalized, forbidden = path
    forbidden = tuple(dict.fromkeys(tuple(layout.forbidden) + forbidden))
    if len(forbidden) > MAX_FORBIDDEN:
        return None
    joining = newline_joining(encoding)
    apart = partial(_apart, core, joining, forbidden, normalized) if joining is not None else dict
    first_roles = None if layout.first_roles is None else apart(layout.first_roles)
    return partial(core.count_messages, apart(layout.roles), first_roles, forbidden, layout.strip, layout.overhead or 0,
                   normalized, layout.system_prompt)


def _apart(core: Any, joining: str, forbidden: tuple[str, ...], normalized: Callable[[str], bool] | None,
           roles: Mapping[str, tuple]) -> dict[str, tuple]:  # fmt: skip
    """`roles` with ROLE_PREFIX_APART (and the prefix's tokens, counted here once) on each role whose prefix
    ends in a newline and that has no suffix, unless a forbidden string could lie across the prefix's end (the
    walk then looks for them in the content alone) or in the prefix (the joined text finds it, as before), or
    the model normalizes and the prefix is not in its normal form (the walk then checks the content alone)."""
    table = {}
    for role, entry in roles.items():
        prefix, constant, may_be_last, suffix, flags = (*entry, "", 0) if len(entry) == 3 else entry
        if (
            prefix.endswith("\n") and not suffix and not flags & ROLE_PREFIX_APART
            and not any(string in prefix or _overlaps_end(prefix, string) for string in forbidden)
            and (normalized is None or normalized(prefix))
        ):
            entry = (prefix, constant, may_be_last, suffix, flags | ROLE_PREFIX_APART, core.count(prefix), joining)
        table[role] = entry
    return table


def _overlaps_end(prefix: str, string: str) -> bool:
    """Whether `prefix` ends with a proper start of `string` (which could then continue in the content)."""
    return any(prefix.endswith(string[:length]) for length in range(1, len(string)))


MAX_FORBIDDEN = 64  # strings the native walk looks for (message_counts.c)


def _text_path(encoding: Any) -> tuple[Any, Any, tuple[str, ...]] | None:
    """(native core whose `count` is `encoding.count_ordinary` for the text the walk lets through, the NFC
    check or None, the strings that keep text off the walk), or None."""
    from tokend.engine.encoding import Encoding
    from tokend.engine.sentencepiece.encoding import SentencePieceEncoding

    core = native_core(encoding)
    if core is not None:
        return core, None, ()
    if type(encoding) is SentencePieceEncoding:
        core = getattr(encoding, "_core", None)
        if encoding.native and encoding._count_text == core.count:
            return core, None, ()
        return None
    if type(encoding) is not Encoding or encoding._native_splitter is None or encoding._prefix_space:
        return None
    core, normalizer = encoding._core, encoding.normalizer
    if encoding._segment_count != core.count or normalizer not in (None, "NFC"):
        return None
    forbidden: list[str] = []
    for token in encoding.added_tokens if encoding._uses_pipeline else ():
        if token.special:
            continue  # count_ordinary reads special tokens' text as text
        content = unicodedata.normalize(normalizer, token.content) if token.normalized and normalizer else token.content
        if not content or (normalizer and not unicodedata.is_normalized(normalizer, token.content)):
            return None
        forbidden.append(content)
    normalized = partial(unicodedata.is_normalized, normalizer) if normalizer else None
    return core, normalized, tuple(forbidden)


def plain_message_bytes(messages: Any) -> int | None:
    """The UTF-8 bytes of every key and string of a plain chat (a list of exact `{"role": str, "content": str}`
    dicts; lone surrogates 3 bytes each), in one C loop; None for anything else. The service layer's request
    size of the common chat (a Python loop cost ~0.2 us a message, more than counting a short turn).

    >>> plain_message_bytes([{"role": "user", "content": "héllo"}])   # "role" + "content" + "user" + 6
    21
    >>> plain_message_bytes([{"role": "user", "content": None}]) is None
    True
    """
    return _plain_message_bytes(messages)
