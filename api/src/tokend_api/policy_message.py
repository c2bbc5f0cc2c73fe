"""tiktoken's special-token arguments ⇄ the ``SpecialTokenPolicy`` message (both directions, one table).

| tiktoken argument  | ``SpecialTokenSet``           | the field left unset (``MODE_UNSPECIFIED``) means |
|--------------------|-------------------------------|---------------------------------------------------|
| ``"all"``          | ``MODE_ALL``                  | ``disallowed``: "all" (tiktoken's default)        |
| empty collection   | ``MODE_NONE``                 | ``allowed``: empty (tiktoken's default)           |
| strings            | ``MODE_LISTED`` + ``tokens``  |                                                   |

``tokens`` with any mode but ``MODE_LISTED``, or a mode this version does not know, is a
``PolicyMessageError`` naming the field: the caller evidently meant something the message does not say.

    >>> message = to_message("all", ())
    >>> from_message(message)
    ('all', frozenset())
    >>> from_message(pb.SpecialTokenPolicy())   # tiktoken's defaults
    (frozenset(), 'all')
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain

from tokend_api.special_tokens import ALL, SpecialTokens, normalize
from tokend_api.v1 import tokenizer_pb2 as pb

__all__ = ["ORDINARY", "PolicyMessageError", "to_message", "from_message", "DEFAULT_FIELD"]

_Mode = pb.SpecialTokenSet.Mode
DEFAULT_FIELD = "special_tokens"
# Listed tokens are read from the message this many at a time (see _token_strings).
_TOKENS_PER_SLICE = 4096

# encode_ordinary: nothing allowed, nothing disallowed.
ORDINARY = pb.SpecialTokenPolicy(
    allowed=pb.SpecialTokenSet(mode=_Mode.MODE_NONE), disallowed=pb.SpecialTokenSet(mode=_Mode.MODE_NONE)
)


class PolicyMessageError(ValueError):
    """A ``SpecialTokenSet`` that says two things at once, or a mode this version does not know."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


def to_message(allowed_special: object, disallowed_special: object) -> pb.SpecialTokenPolicy:
    """tiktoken's two arguments → the request's policy (TypeError naming a bad argument)."""
    return pb.SpecialTokenPolicy(
        allowed=_token_set(normalize(allowed_special, argument="allowed_special")),
        disallowed=_token_set(normalize(disallowed_special, argument="disallowed_special")),
    )


def from_message(policy: pb.SpecialTokenPolicy, *, field: str = DEFAULT_FIELD) -> tuple[SpecialTokens, SpecialTokens]:
    """The policy message → ``(allowed_special, disallowed_special)`` as tiktoken takes them."""
    return (
        _arguments(policy.allowed, unset=frozenset(), field=f"{field}.allowed"),
        _arguments(policy.disallowed, unset=ALL, field=f"{field}.disallowed"),
    )


def _token_set(value: SpecialTokens) -> pb.SpecialTokenSet:
    if value == ALL:
        return pb.SpecialTokenSet(mode=_Mode.MODE_ALL)
    if not value:
        return pb.SpecialTokenSet(mode=_Mode.MODE_NONE)
    # sorted: the same arguments always give the same request bytes
    return pb.SpecialTokenSet(mode=_Mode.MODE_LISTED, tokens=sorted(value))


def _arguments(token_set: pb.SpecialTokenSet, *, unset: SpecialTokens, field: str) -> SpecialTokens:
    mode = token_set.mode
    if mode != _Mode.MODE_LISTED and token_set.tokens:
        raise PolicyMessageError(
            f"{field}.tokens",
            f"tokens are listed but mode is {_mode_name(mode)}; set mode MODE_LISTED to use exactly these tokens, "
            "or remove the tokens",
        )
    if mode == _Mode.MODE_UNSPECIFIED:
        return unset
    if mode == _Mode.MODE_NONE:
        return frozenset()
    if mode == _Mode.MODE_ALL:
        return ALL
    if mode == _Mode.MODE_LISTED:
        return _token_strings(token_set.tokens)
    raise PolicyMessageError(
        f"{field}.mode",
        f"unknown mode {mode}; use MODE_NONE, MODE_ALL or MODE_LISTED (this server may be older than the client)",
    )


def _mode_name(mode: int) -> str:
    try:
        return _Mode.Name(mode)
    except ValueError:
        return str(mode)


def _token_strings(tokens: Sequence[str]) -> frozenset[str]:
    """``frozenset(tokens)``, read a slice at a time: one C call over a list of 100,000 strings (each made
    from the message's bytes and hashed) holds the GIL ~10 ms, and a server's other calls wait; between
    slices the generator below gives them a turn."""
    if len(tokens) <= _TOKENS_PER_SLICE:
        return frozenset(tokens)
    slices = (tokens[start : start + _TOKENS_PER_SLICE] for start in range(0, len(tokens), _TOKENS_PER_SLICE))
    return frozenset(chain.from_iterable(slices))
