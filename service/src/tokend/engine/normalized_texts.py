"""Texts a call has already normalized: measuring a text's normalized size (``working_text_bytes``) keeps the
normalized form here, and the encode of that very text object later in the call takes it instead of normalizing
the text a second time.

Why: the service measures a text that the normalizer may make much longer (a SentencePiece Unigram model's, an
NFC model's) before admitting it; without this the engine then normalized it again to encode it: 15-22 % of a
Unigram count of 1 MiB of English, of a Qwen 3 count of 600 KB of multilingual text (docs/decisions.md, hostile23
and estimates24).

The caller opens ``keeping_normalized(most_bytes)`` around its measurement and its engine calls; the scope travels
in a context variable, so it reaches a bulk lane's thread (which runs the caller's context), and everything kept is
dropped when it closes. Outside a scope nothing is kept. Texts are matched by identity (a str or bytes is
immutable, and the scope holds it), never by equality: no text is compared or hashed.

    >>> with keeping_normalized(1 << 20) as kept:
    ...     text = "caf\\u0065\\u0301"
    ...     kept.keep(text, "NFC", "caf\\u00e9", 5)
    ...     kept_normalized(text, "NFC")
    'café'
    >>> kept_normalized(text, "NFC") is None   # the scope closed
    True

Not handled: texts the engine cuts before normalizing (at allowed special tokens, a surrogate-repaired copy) are
other objects and are normalized again, as before.
"""

from __future__ import annotations

import contextvars
from typing import Any

__all__ = ["NormalizedTexts", "keeping_normalized", "kept_normalized", "current_keeper"]


class NormalizedTexts:
    """The normalized forms one call keeps: at most ``most_bytes`` of them in all (``room`` says what is left),
    so measuring holds no more than the request may be admitted with."""

    __slots__ = ("most_bytes", "_kept", "_held")

    def __init__(self, most_bytes: int) -> None:
        self.most_bytes = most_bytes
        self._kept: dict[int, tuple[Any, Any, Any]] = {}  # id(source) -> (source, rule, normalized)
        self._held = 0

    @property
    def room(self) -> int:
        """Bytes of normalized text that may still be kept."""
        return max(0, self.most_bytes - self._held)

    def keep(self, source: Any, rule: Any, normalized: Any, size: int) -> None:
        """Remember that ``source`` under ``rule`` (a normalizer's identity, e.g. "NFC" or a core) is
        ``normalized`` (``size`` bytes of UTF-8); the scope holds both until it closes."""
        self._kept[id(source)] = (source, rule, normalized)
        self._held += size

    def get(self, source: Any, rule: Any) -> Any:
        entry = self._kept.get(id(source))
        if entry is None or entry[0] is not source or entry[1] != rule:
            return None
        return entry[2]


_CURRENT: contextvars.ContextVar[NormalizedTexts | None] = contextvars.ContextVar("tokend_normalized", default=None)


class keeping_normalized:  # noqa: N801 - used as a function: ``with keeping_normalized(most_bytes) as kept:``
    """A scope in which measured texts keep their normalized forms (at most ``most_bytes`` in all).

    A class, not a ``@contextmanager`` generator: every served text call opens one, and a generator-based
    context manager costs several Python calls more per entry."""

    __slots__ = ("_keeper", "_token")

    def __init__(self, most_bytes: int) -> None:
        self._keeper = NormalizedTexts(most_bytes)

    def __enter__(self) -> NormalizedTexts:
        self._token = _CURRENT.set(self._keeper)
        return self._keeper

    def __exit__(self, *exc_info: object) -> None:
        _CURRENT.reset(self._token)


def current_keeper() -> NormalizedTexts | None:
    """The open scope's keeper, None outside one."""
    return _CURRENT.get()


def kept_normalized(source: Any, rule: Any) -> Any:
    """The normalized form kept for this very object under ``rule`` in the current scope, else None."""
    keeper = _CURRENT.get()
    return None if keeper is None else keeper.get(source, rule)
