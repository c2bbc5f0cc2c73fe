"""The ``SpecialTokenPolicy`` message → tiktoken-style ``allowed_special`` / ``disallowed_special``.

| field mode         | allowed_special            | disallowed_special         |
|--------------------|----------------------------|----------------------------|
| unset/UNSPECIFIED  | ``set()`` (tiktoken default)| ``"all"`` (tiktoken default)|
| MODE_NONE          | ``set()``                  | ``()``                     |
| MODE_ALL           | ``"all"``                  | ``"all"``                  |
| MODE_LISTED        | ``set(tokens)``            | ``set(tokens)``            |

The listed strings are passed through unchanged, as tiktoken does: a listed string that is not one
of the model's special tokens is allowed (has no effect) or disallowed (its occurrence is an error)
exactly as in tiktoken. ``tokens`` with any mode but MODE_LISTED is an InvalidRequest, because the
caller evidently meant something the message does not say.

    >>> from tokend._proto import tokenizer_pb2 as pb
    >>> to_special_arguments(pb.SpecialTokenPolicy())
    SpecialArguments(allowed_special=set(), disallowed_special='all')
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from tokend._proto import tokenizer_pb2 as pb
from tokend.server.request_errors import InvalidRequest

__all__ = ["SpecialArguments", "to_special_arguments"]

_Mode = pb.SpecialTokenSet.Mode


@dataclass(frozen=True)
class SpecialArguments:
    """Keyword arguments for ``Encoding.encode`` / ``Encoding.count``."""

    allowed_special: Literal["all"] | Collection[str]
    disallowed_special: Literal["all"] | Collection[str]

    def as_kwargs(self) -> dict[str, Literal["all"] | Collection[str]]:
        return {"allowed_special": self.allowed_special, "disallowed_special": self.disallowed_special}


def to_special_arguments(policy: pb.SpecialTokenPolicy, *, field: str = "special_tokens") -> SpecialArguments:
    """Translate the policy message; raises InvalidRequest naming the field that is inconsistent."""
    allowed = _translate(policy.allowed, default_none=True, field=f"{field}.allowed")
    disallowed = _translate(policy.disallowed, default_none=False, field=f"{field}.disallowed")
    return SpecialArguments(allowed_special=allowed, disallowed_special=disallowed)


def _translate(token_set: pb.SpecialTokenSet, *, default_none: bool, field: str) -> Literal["all"] | Collection[str]:
    mode = token_set.mode
    if mode != _Mode.MODE_LISTED and token_set.tokens:
        raise InvalidRequest(
            f"{field}.tokens",
            f"tokens are listed but mode is {_Mode.Name(mode)}; set mode MODE_LISTED to use exactly these tokens, "
            "or remove the tokens",
        )
    if mode == _Mode.MODE_UNSPECIFIED:
        mode = _Mode.MODE_NONE if default_none else _Mode.MODE_ALL
    if mode == _Mode.MODE_NONE:
        return set() if default_none else ()
    if mode == _Mode.MODE_ALL:
        return "all"
    if mode == _Mode.MODE_LISTED:
        return set(token_set.tokens)
    raise InvalidRequest(
        f"{field}.mode",
        f"unknown mode {mode}; use MODE_NONE, MODE_ALL or MODE_LISTED (this server may be older than the client)",
    )
