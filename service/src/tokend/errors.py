"""The tokend exception tree — one tree for every layer (the client mirrors it under the same names).

```
TokendError(Exception)
├── DisallowedSpecialTokenError(TokendError, ValueError)   .token .offset (characters) .item (batch index or None)
├── UnknownTokenIdError(TokendError, KeyError)             .token_id .item
├── ModelFormatError(TokendError, ValueError)              a payload/manifest that does not parse
├── ChecksumMismatchError(TokendError, ValueError)         .expected .actual .what
├── InvalidBudgetError(TokendError, ValueError)            .argument: a truncate/chunk argument out of range
├── OffsetsUnavailableError(TokendError, ValueError)       .model .position: tokens that do not spell the text
├── (registry)
│   ├── ModelNotFoundError(TokendError, ValueError)        .ref .available
│   ├── VersionConflictError(TokendError)                  different content under a published name@version
│   └── RegistryError(TokendError)                         anything else the registry refuses
│       └── ModelLoadingError(RegistryError)               .ref: still loading after the caller's wait; retry
└── (chat)
    ├── ChatRequestError(TokendError, ValueError)          .message_index .field: messages/tools a chat format refuses
    │   └── ChatTemplateError(ChatRequestError)            .reason: a chat template raised, failed or hit a limit
    └── ChatFormatNotSetError(TokendError, ValueError)     .ref: the model version has no chat format
```

The `ValueError` / `KeyError` bases keep code written for tiktoken working unchanged: tiktoken raises
`ValueError` for a disallowed special token and `KeyError` for an unknown id in decode.
`errors="strict"` decoding raises Python's own `UnicodeDecodeError`, as tiktoken does.

This module is a leaf: it imports nothing from tokend, so every layer (and tests) can import it cheaply.
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from itertools import islice

__all__ = [
    "quoted",
    "TokendError",
    "DisallowedSpecialTokenError",
    "UnknownTokenIdError",
    "ModelFormatError",
    "ChecksumMismatchError",
    "InvalidBudgetError",
    "OffsetsUnavailableError",
    "ModelNotFoundError",
    "VersionConflictError",
    "RegistryError",
    "ChatRequestError",
    "ChatTemplateError",
    "ChatFormatNotSetError",
    "ModelLoadingError",
]


def quoted(value: object, limit: int = 100) -> str:
    """``repr(value)`` for an error message, cut to ``limit`` characters when the caller sent more.

    Only a bounded part of the value is ever rendered: a front-end may pass a field through as its JSON body
    gave it (a string of 40 MB, or an array holding one), and ``repr`` of the whole before the cut copied all of
    it (twice inside an array) for a message of 100 characters.

    >>> quoted("user")
    "'user'"
    >>> quoted("r" * 3000)[-28:]
    'r… (3,000 characters in all)'
    >>> quoted(["a", 1]), len(quoted(["q" * 10_000_000]))
    ("['a', 1]", 101)
    """
    if isinstance(value, str):
        text = repr(value if len(value) <= limit else value[:limit])
        if len(value) <= limit and len(text) <= limit:
            return text
        return f"{text[:limit]}… ({len(value):,} characters in all)"
    text = _ShortRepr(limit).repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


class _ShortRepr(reprlib.Repr):
    """reprlib's bounded repr (a few items of a container, the ends of a long string), a dict's items in their
    own order: reprlib sorts all of its keys first."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = limit
        self.maxlist = self.maxtuple = self.maxdict = self.maxset = self.maxfrozenset = self.maxdeque = 8

    def repr_dict(self, x: dict, level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        items = [f"{self.repr1(key, level - 1)}: {self.repr1(item, level - 1)}" for key, item in islice(x.items(), self.maxdict)]
        return "{" + ", ".join(items + ["..."] * (len(x) > self.maxdict)) + "}"


class TokendError(Exception):
    """Base class of every error tokend raises on purpose."""


class DisallowedSpecialTokenError(TokendError, ValueError):
    """Text contains a special token that the call did not allow.

    >>> err = DisallowedSpecialTokenError("<|endoftext|>", offset=6)
    >>> (err.token, err.offset, err.item, isinstance(err, ValueError))
    ('<|endoftext|>', 6, None, True)
    """

    def __init__(self, token: str, offset: int, item: int | None = None) -> None:
        self.token = token
        self.offset = offset  # character (not byte) offset into the text
        self.item = item  # index in a batch, None for a single text
        where = f"at character {offset}" + (f" of batch item {item}" if item is not None else "")
        super().__init__(
            f"Encountered text corresponding to disallowed special token {token!r} {where}.\n"
            "If you want this text to be encoded as a special token, "
            f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
            "If you want this text to be encoded as normal text, disable the check for this token "
            f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
            "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
        )

    def __reduce__(self):  # keep pickling (multiprocessing, test runners) working with keyword state
        return (type(self), (self.token, self.offset, self.item))


class UnknownTokenIdError(TokendError, KeyError):
    """A token id that is neither a mergeable token nor a special token of the encoding.

    >>> err = UnknownTokenIdError(999999, item=2)
    >>> (err.token_id, err.item, isinstance(err, KeyError))
    (999999, 2, True)
    """

    def __init__(self, token_id: object, item: int | None = None, *, n_vocab: int | None = None) -> None:
        self.token_id = token_id
        self.item = item
        self.n_vocab = n_vocab
        where = f" in batch item {item}" if item is not None else ""
        valid = f" (valid ids are 0..{n_vocab - 1} that the encoding defines)" if n_vocab else ""
        self._message = (
            f"Invalid token for decoding: {token_id!r}{where} is not a token id of this encoding{valid}; "
            "pass only ids produced by the same encoding."
        )
        super().__init__(self._message)

    def __str__(self) -> str:  # KeyError would repr() the message and add quotes
        return self._message

    def __reduce__(self):
        return (_rebuild_unknown_token_id_error, (self.token_id, self.item, self.n_vocab))


def _rebuild_unknown_token_id_error(token_id, item, n_vocab):
    return UnknownTokenIdError(token_id, item, n_vocab=n_vocab)


class ModelFormatError(TokendError, ValueError):
    """A model payload or manifest that does not parse; the message names the file/line and the problem."""


class ChecksumMismatchError(TokendError, ValueError):
    """Bytes whose SHA-256 differs from the expected one.

    >>> err = ChecksumMismatchError(expected="ab" * 32, actual="cd" * 32, what="cl100k_base ranks")
    >>> err.what
    'cl100k_base ranks'
    """

    def __init__(self, *, expected: str, actual: str, what: str) -> None:
        self.expected = expected
        self.actual = actual
        self.what = what
        super().__init__(
            f"SHA-256 mismatch for {what}: expected {expected}, got {actual}. The data is corrupt, truncated "
            "or a different file; fetch the original again or fix the expected checksum."
        )

    def __reduce__(self):
        return (_rebuild_checksum_error, (self.expected, self.actual, self.what))


def _rebuild_checksum_error(expected, actual, what):
    return ChecksumMismatchError(expected=expected, actual=actual, what=what)


class InvalidBudgetError(TokendError, ValueError):
    """A token-budget argument (truncate, chunk) out of range, or a budget no cut of the text can meet.

    >>> err = InvalidBudgetError("overlap", "overlap must be below max_tokens (8), got 8")
    >>> (err.argument, isinstance(err, ValueError))
    ('overlap', True)
    """

    def __init__(self, argument: str, message: str) -> None:
        self.argument = argument  # the parameter to change: "max_tokens", "side", "overlap", "prefer", ...
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.argument, str(self)))


class OffsetsUnavailableError(TokendError, ValueError):
    """The model's tokens do not spell the input text, so they have no offsets in it.

    Byte-level BPE always spells its input. A family whose normalizer rewrites text (NFKC, collapsed
    whitespace) does not; `position` is the first character of the input where the decoded tokens differ.
    >>> OffsetsUnavailableError("t5-small", 3).position
    3
    """

    def __init__(self, model: str, position: int) -> None:
        self.model = model
        self.position = position
        super().__init__(
            f"model {model!r} rewrites the text it encodes (from character {position} on, the decoded tokens "
            "differ from the input), so its tokens have no offsets, cut points or chunks in that text; use a "
            "model without text normalization for offsets, truncation and chunking."
        )

    def __reduce__(self):
        return (type(self), (self.model, self.position))


class ModelNotFoundError(TokendError, ValueError):
    """A model reference (name, name@version or name@alias) that the registry does not have."""

    def __init__(self, ref: str, available: Sequence[str] = (), message: str | None = None) -> None:
        self.ref = ref
        self.available = list(available)
        if message is None:
            listed = ", ".join(self.available) if self.available else "none"
            message = f"Unknown model {ref!r}; available: {listed}."
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.ref, self.available, str(self)))


class VersionConflictError(TokendError):
    """Publishing different content under an already published name@version (published versions are immutable)."""


class RegistryError(TokendError):
    """Anything else the registry refuses: a bad layout, an unreachable source, a write to a read-only source."""


class ChatRequestError(TokendError, ValueError):
    """Chat messages or tools that a chat format cannot render; names the offending item.

    `message_index` is the index in `messages` (None when the problem is not one message, e.g. `tools`);
    `field` is the path of the offending value, e.g. "messages[2].tool_calls[0].function.name".

    >>> err = ChatRequestError("role 'robot' is not one of system, user, assistant", message_index=1,
    ...                        field="messages[1].role")
    >>> str(err), err.message_index
    ("messages[1].role: role 'robot' is not one of system, user, assistant", 1)
    """

    def __init__(self, problem: str, *, message_index: int | None = None, field: str | None = None) -> None:
        self.problem = problem
        self.message_index = message_index
        self.field = field
        super().__init__(f"{field}: {problem}" if field else problem)

    def __reduce__(self):
        return (_rebuild_chat_error, (type(self), self.problem, self.message_index, self.field, None))


class ChatTemplateError(ChatRequestError):
    """A chat template (code from the registry) that raised, failed or exceeded its limits while rendering.

    `reason`: "raised" (the template called raise_exception: its message is kept), "failed" (any other error
    inside the template), "security" (an attribute or call the sandbox forbids), "time_limit", "size_limit".
    """

    def __init__(self, problem: str, *, reason: str, message_index: int | None = None, field: str | None = None) -> None:
        self.reason = reason
        super().__init__(problem, message_index=message_index, field=field)

    def __reduce__(self):
        return (_rebuild_chat_error, (type(self), self.problem, self.message_index, self.field, self.reason))


def _rebuild_chat_error(cls, problem, message_index, field, reason):
    if reason is None:
        return cls(problem, message_index=message_index, field=field)
    return cls(problem, reason=reason, message_index=message_index, field=field)


class ChatFormatNotSetError(TokendError, ValueError):
    """`encode_chat` / `count_chat` on a model version whose manifest has no chat format."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"model {ref} has no chat format; use a model that has one, or publish a new version with one "
            f"(`tokend registry chat-format {ref} --chat-format NAME | --chat-template FILE`, or Registry.publish_chat_format)"
        )

    def __reduce__(self):
        return (type(self), (self.ref,))


class ModelLoadingError(RegistryError):
    """A version that is still being loaded (or whose loads already have enough callers waiting): retry
    shortly. Raised only to callers that bounded their wait (`Registry.load(ref, wait=...)`).

    >>> err = ModelLoadingError("cl100k_base@2", "cl100k_base@2 is still loading; retry shortly")
    >>> (err.ref, isinstance(err, RegistryError))
    ('cl100k_base@2', True)
    """

    def __init__(self, ref: str, message: str) -> None:
        self.ref = ref
        super().__init__(message)

    def __reduce__(self):
        return (type(self), (self.ref, str(self)))
