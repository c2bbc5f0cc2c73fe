"""tiktoken's special-token arguments, ``allowed_special`` and ``disallowed_special``, checked once for everyone.

Each is ``"all"`` or a collection of strings. tiktoken's semantics (applied by the engine):
``allowed_special="all"`` means every special token of the model; ``disallowed_special="all"`` every special
token that is not allowed; a disallowed string found in the text is an error even when it is not a special
token of the model; an allowed string that is not a special token has no effect.

    >>> normalize("all", argument="allowed_special")
    'all'
    >>> sorted(normalize(["<|b|>", "<|a|>"], argument="disallowed_special"))
    ['<|a|>', '<|b|>']
    >>> normalize("<|endoftext|>", argument="allowed_special")
    Traceback (most recent call last):
    ...
    TypeError: allowed_special must be 'all' or a collection of strings, got the string '<|endoftext|>'; to name one token write allowed_special={'<|endoftext|>'}

Deviation from tiktoken: a bare string other than ``"all"`` is refused (tiktoken would treat it as the set
of its characters or fail with an unhelpful TypeError).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

__all__ = ["ALL", "SpecialTokens", "normalize"]

ALL: Literal["all"] = "all"
SpecialTokens = Literal["all"] | frozenset[str]


def normalize(value: object, *, argument: str) -> SpecialTokens:
    """``"all"`` or the frozenset of the strings in ``value``; TypeError naming ``argument`` otherwise."""
    if isinstance(value, str):
        if value == ALL:
            return ALL
        raise TypeError(
            f"{argument} must be 'all' or a collection of strings, got the string {_quoted(value)}; "
            f"to name one token write {argument}={{{_quoted(value)}}}"
        )
    if not isinstance(value, Collection):
        raise TypeError(f"{argument} must be 'all' or a collection of strings, got {_quoted(value)}")
    for token in value:
        if not isinstance(token, str):
            raise TypeError(f"{argument} must contain strings, got {_quoted(token)} ({type(token).__name__})")
    return frozenset(value)


def _quoted(value: object, limit: int = 100) -> str:
    """``repr(value)`` cut to ``limit`` characters: a server quotes these errors back to whoever sent the value.

    >>> _quoted("q" * 5000)[-28:]
    "'… (5,000 characters in all)"
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value):,} characters in all)"
    text = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[:limit]}…"
