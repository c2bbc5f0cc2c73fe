"""The tokend exception tree — one tree for every layer (the client mirrors it under the same names).

```
TokendError(Exception)
├── DisallowedSpecialTokenError(TokendError, ValueError)   .token .offset (characters) .item (batch index or None)
├── UnknownTokenIdError(TokendError, KeyError)             .token_id .item
├── ModelFormatError(TokendError, ValueError)              a payload/manifest that does not parse
├── ChecksumMismatchError(TokendError, ValueError)         .expected .actual .what
└── (registry)
    ├── ModelNotFoundError(TokendError, ValueError)        .ref .available
    ├── VersionConflictError(TokendError)                  different content under a published name@version
    └── RegistryError(TokendError)                         anything else the registry refuses
        └── ModelLoadingError(RegistryError)               .ref: still loading after the caller's wait; retry
```

The `ValueError` / `KeyError` bases keep code written for tiktoken working unchanged: tiktoken raises
`ValueError` for a disallowed special token and `KeyError` for an unknown id in decode.
`errors="strict"` decoding raises Python's own `UnicodeDecodeError`, as tiktoken does.

This module is a leaf: it imports nothing from tokend, so every layer (and tests) can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "TokendError",
    "DisallowedSpecialTokenError",
    "UnknownTokenIdError",
    "ModelFormatError",
    "ChecksumMismatchError",
    "ModelNotFoundError",
    "VersionConflictError",
    "RegistryError",
    "ModelLoadingError",
]


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
