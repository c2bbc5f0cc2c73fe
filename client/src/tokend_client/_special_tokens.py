"""Translate tiktoken's `allowed_special` / `disallowed_special` arguments into a `SpecialTokenPolicy`.

tiktoken's arguments are `"all"` or a collection of strings; the API's `SpecialTokenSet` has a mode for
each (`MODE_ALL`, `MODE_NONE` for an empty collection, `MODE_LISTED` with the strings). The server applies
tiktoken's semantics itself (`disallowed_special="all"` means every special token that is not allowed;
disallowed strings that are not special tokens still raise when found), so the client sends the arguments
as given and never resolves `"all"` against its own copy of the model's special tokens.

    special_token_policy(set(), "all")              # tiktoken's defaults
    special_token_policy({"<|endoftext|>"}, "all")  # allow one, disallow the rest

Not handled: a bare string other than `"all"` (tiktoken fails on it with an unhelpful TypeError or treats it
as a set of characters); we raise a TypeError that says how to wrap it.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from ._proto import tokenizer_pb2 as pb

SpecialTokens = Literal["all"] | Collection[str]

ORDINARY = pb.SpecialTokenPolicy(
    allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_NONE),
    disallowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_NONE),
)


def special_token_set(value: SpecialTokens, *, argument: str) -> pb.SpecialTokenSet:
    """One tiktoken argument → a `SpecialTokenSet`; `argument` names it in errors.

        special_token_set("all", argument="allowed_special").mode == pb.SpecialTokenSet.MODE_ALL
    """
    if isinstance(value, str):
        if value == "all":
            return pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_ALL)
        raise TypeError(
            f"{argument} must be 'all' or a collection of strings, got the string {value!r}; "
            f"to name one token write {argument}={{{value!r}}}"
        )
    try:
        tokens = sorted(value)  # sorted: the same arguments always give the same request bytes
    except TypeError as error:
        raise TypeError(f"{argument} must be 'all' or a collection of strings, got {value!r}") from error
    for token in tokens:
        if not isinstance(token, str):
            raise TypeError(f"{argument} must contain strings, got {token!r} ({type(token).__name__})")
    if not tokens:
        return pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_NONE)
    return pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_LISTED, tokens=tokens)


def special_token_policy(allowed_special: SpecialTokens, disallowed_special: SpecialTokens) -> pb.SpecialTokenPolicy:
    """tiktoken's two arguments → the request's `SpecialTokenPolicy`.

        policy = special_token_policy(allowed_special="all", disallowed_special=())
    """
    return pb.SpecialTokenPolicy(
        allowed=special_token_set(allowed_special, argument="allowed_special"),
        disallowed=special_token_set(disallowed_special, argument="disallowed_special"),
    )
