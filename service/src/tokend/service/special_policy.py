"""The special-token policy of a request, as one domain type: tiktoken's ``allowed_special`` /
``disallowed_special`` (``"all"`` or a set of strings), bound to a model before use.

Every front-end builds a :class:`SpecialTokenPolicy` (from a gRPC message, JSON fields or command-line
flags); the service binds it to the model that answers (:meth:`SpecialTokenPolicy.bind`). Binding keeps
tiktoken's semantics and bounds the cost of what a caller can list:

- allowed strings that are not special tokens of the model have no effect (as in tiktoken), so only the
  model's own special tokens are kept;
- disallowed strings that are special tokens go to the engine, which checks the set it knows;
- disallowed strings that are *not* special tokens still raise where they occur (as in tiktoken, the
  leftmost disallowed string is reported); at most ``MAX_OTHER_DISALLOWED`` of them are accepted, and each
  is looked for with a plain substring search (linear in the text), never compiled into a pattern;
- the listed strings count against ``max_request_bytes`` like input text (:meth:`listed_bytes`), and one set
  lists at most ``MAX_LISTED_TOKENS`` (:func:`check_listed_count`, which front-ends call on the list's length
  before they make its strings).

    >>> from tokend import get_encoding
    >>> encoding = get_encoding("cl100k_base")
    >>> policy = SpecialTokenPolicy(allowed=frozenset({"<|endoftext|>", "not special"}))
    >>> policy.bind(encoding).apply(encoding.encode, "x<|endoftext|>")
    [87, 100257]
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any, TypeVar

from tokend_api.special_tokens import ALL, SpecialTokens, normalize

from tokend.errors import DisallowedSpecialTokenError
from tokend.service.errors import InvalidRequest, echo
from tokend.service.limits import text_bytes

__all__ = ["SpecialTokenPolicy", "BoundPolicy", "DEFAULT_POLICY", "ORDINARY_POLICY", "MAX_OTHER_DISALLOWED",
           "MAX_LISTED_TOKENS", "check_listed_count"]

# Disallowed strings that are not special tokens of the model, searched for one by one.
MAX_OTHER_DISALLOWED = 64
# Strings one set (allowed or disallowed) may list: 15x o200k_harmony's 1,091 special tokens. A longer list is
# refused from its length alone, before its strings are made: making, hashing and freeing 100,000 of them held
# a worker's GIL up to ~10 ms while its other calls waited (bench hostile, "1 100,000 disallowed strings").
MAX_LISTED_TOKENS = 16384
_MIN_SLICE = 4096


def check_listed_count(count: int, field: str) -> None:
    """InvalidRequest naming ``field`` when one set lists more than ``MAX_LISTED_TOKENS`` strings.

    >>> check_listed_count(1091, "special_tokens.disallowed.tokens")
    >>> check_listed_count(100_000, "special_tokens.disallowed.tokens")
    Traceback (most recent call last):
    ...
    tokend.service.errors.InvalidRequest: special_tokens.disallowed.tokens: 100000 strings listed; at most 16384 per set: list only the model's special tokens (the set's "all" mode names every one)
    """
    if count > MAX_LISTED_TOKENS:
        raise InvalidRequest(
            field,
            f"{count} strings listed; at most {MAX_LISTED_TOKENS} per set: list only the model's special tokens "
            '(the set\'s "all" mode names every one)',
        )


@dataclass(frozen=True)
class SpecialTokenPolicy:
    """tiktoken's two arguments, checked; ``*_field`` name them in errors, in the caller's vocabulary."""

    allowed: SpecialTokens = frozenset()
    disallowed: SpecialTokens = ALL
    allowed_field: str = "special_tokens.allowed.tokens"
    disallowed_field: str = "special_tokens.disallowed.tokens"

    @classmethod
    def from_arguments(
        cls, allowed_special: object, disallowed_special: object, *, allowed_field: str, disallowed_field: str
    ) -> SpecialTokenPolicy:
        """From tiktoken-shaped values (``"all"`` or a collection of strings); InvalidRequest names a bad one."""
        values = []
        for value, field in ((allowed_special, allowed_field), (disallowed_special, disallowed_field)):
            if isinstance(value, Sized) and not isinstance(value, str):
                check_listed_count(len(value), field)
            try:
                values.append(normalize(value, argument=field))
            except TypeError as exc:
                raise InvalidRequest(field, str(exc).removeprefix(f"{field} ")) from None
        return cls(values[0], values[1], allowed_field, disallowed_field)

    def listed_bytes(self) -> int:
        """UTF-8 bytes of the listed strings (they count against the request's input bytes)."""
        return sum(sum(map(text_bytes, tokens)) for tokens in (self.allowed, self.disallowed) if tokens != ALL)

    def bind(self, encoding: Any) -> BoundPolicy:
        """The policy for one model: the engine's arguments plus the other disallowed strings to look for.

        Costs what the caller listed, not what the model has: o200k_harmony has ~1,100 special tokens, and a
        pass over them per request cost more than counting a short text."""
        if self.disallowed == ALL and not self.allowed:  # tiktoken's defaults (most requests): nothing listed
            return BoundPolicy(self.allowed, ALL, (), encoding)
        for tokens, field in ((self.allowed, self.allowed_field), (self.disallowed, self.disallowed_field)):
            if tokens != ALL:
                check_listed_count(len(tokens), field)
        specials = encoding.special_tokens  # a read-only view: membership without a copy
        allowed = self.allowed if self.allowed == ALL else frozenset(t for t in self.allowed if t in specials)
        if self.disallowed == ALL:
            return BoundPolicy(allowed, ALL, (), encoding)
        # A list, and its least string found a slice at a time: ``min`` over 100,000 strings is one C call that
        # held the GIL ~9 ms (more on a busy machine) while the worker's other calls waited.
        listed = [t for t in self.disallowed if t not in specials]
        if len(listed) > MAX_OTHER_DISALLOWED:
            least = min(min(listed[at : at + _MIN_SLICE]) for at in range(0, len(listed), _MIN_SLICE))
            example = echo(least, 40)
            raise InvalidRequest(
                self.disallowed_field,
                f"{len(listed)} of the listed strings (e.g. {example!r}) are not special tokens of the model; at most "
                f"{MAX_OTHER_DISALLOWED} such strings are searched for: list only the model's special tokens, or "
                "look for other strings before sending the text",
            )
        others = frozenset(listed)
        disallowed = self.disallowed - others
        return BoundPolicy(allowed, disallowed, tuple(sorted(others)), encoding)


Result = TypeVar("Result")


@dataclass(frozen=True)
class BoundPolicy:
    """A policy bound to one model: ``apply(encoding.encode, text)`` (or ``count``) under it."""

    allowed_special: SpecialTokens
    disallowed_special: SpecialTokens
    other_disallowed: tuple[str, ...]  # disallowed strings that are not special tokens of the model
    encoding: Any  # the model: its count checks a prefix when an other disallowed string is found

    def apply(self, method: Callable[..., Result], text: str) -> Result:
        found = self._first_other(text)
        if found is not None:
            self._raise_leftmost(text, *found)
        return method(text, allowed_special=self.allowed_special, disallowed_special=self.disallowed_special)

    def apply_batch(self, method: Callable[..., list[Result]], texts: list[str]) -> list[Result]:
        """``apply`` for several texts with one engine batch call (``encoding.encode_batch`` / ``count_batch``),
        on the calling worker's one thread (its GIL released while the engine works). Raises for the first
        text that breaks the policy, without saying which: callers redo the batch one text at a time then."""
        for text in texts:
            found = self._first_other(text)
            if found is not None:
                self._raise_leftmost(text, *found)
        return method(texts, num_threads=1, allowed_special=self.allowed_special,
                      disallowed_special=self.disallowed_special)

    def _first_other(self, text: str) -> tuple[int, str] | None:
        """The leftmost (then longest) other disallowed string in ``text``: one substring search each."""
        first: tuple[int, str] | None = None
        for token in self.other_disallowed:
            at = text.find(token)
            if at >= 0 and (first is None or at < first[0] or (at == first[0] and len(token) > len(first[1]))):
                first = (at, token)
        return first

    def _raise_leftmost(self, text: str, offset: int, token: str) -> None:
        # A disallowed special token that starts no later wins, as in tiktoken's one search over all strings:
        # the engine checks the text up to where such a token could end.
        longest_special = max(map(len, self.encoding.special_tokens), default=0)
        try:
            self.encoding.count(
                text[: offset + max(longest_special, len(token))],
                allowed_special=self.allowed_special, disallowed_special=self.disallowed_special,
            )  # fmt: skip
        except DisallowedSpecialTokenError as special:
            if special.offset < offset or (special.offset == offset and len(special.token) >= len(token)):
                raise
        raise DisallowedSpecialTokenError(token, offset)


DEFAULT_POLICY = SpecialTokenPolicy()  # tiktoken's defaults: nothing allowed, everything disallowed
ORDINARY_POLICY = SpecialTokenPolicy(frozenset(), frozenset())  # encode_ordinary
