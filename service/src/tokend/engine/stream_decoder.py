"""Streaming decode: ids in, text out, never a broken character.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> decoder = StreamDecoder(enc)
>>> [decoder.feed([token]) for token in enc.encode("hi 🤖")] + [decoder.flush()]
['hi', ' ', '', '🤖', '']

A generated sequence arrives a few ids at a time and a token may hold part of a character (the emoji above
is three tokens, the first holding the space and the emoji's first bytes: the space comes out at once);
`feed` returns only the characters completed so far and keeps the rest, `flush` ends the sequence. For any ids split anywhere into feeds,
`"".join(feeds) + flush() == decode(all ids, errors)` — Python's incremental UTF-8 decoder gives exactly
the one-shot decoder's result, `errors` handling included (`"replace"`: an incomplete character at the end
becomes U+FFFD in `flush`; `"strict"`: `UnicodeDecodeError` as soon as bytes cannot start a character).

Family rules come from the encoding's `token_surfaces` hook (see budget_methods): byte-level BPE adds each
token's bytes; SentencePiece drops the space of a leading "▁" while nothing has been decoded yet, so the
decoder carries that "at start" state from feed to feed. After `flush` (or an error) the decoder starts a
new sequence.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable

__all__ = ["StreamDecoder"]


class StreamDecoder:
    """Incremental decoder over one encoding; `errors` as in `decode` ("replace", "strict", "ignore", ...)."""

    def __init__(self, encoding, errors: str = "replace") -> None:
        if not isinstance(errors, str):
            raise TypeError(f"errors must be a str, got {type(errors).__name__}")
        try:
            codecs.lookup_error(errors)
        except LookupError:
            raise ValueError(
                f"errors={errors!r} is not a codec error handler; use 'replace', 'strict', 'ignore', "
                "'backslashreplace' or 'surrogateescape'"
            ) from None
        self._encoding = encoding
        self.errors = errors
        self._reset()

    def _reset(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(self.errors)
        self._at_start = True

    def feed(self, ids: int | Iterable[int]) -> str:
        """Decode the next id(s); returns the characters they complete (possibly "").

        An unknown id raises `UnknownTokenIdError` and leaves the decoder as it was.
        """
        tokens = [ids] if isinstance(ids, int) else list(ids)
        surfaces, at_start = self._encoding.token_surfaces(tokens, at_start=self._at_start)
        try:
            text = self._utf8.decode(b"".join(surfaces))
        except UnicodeDecodeError:
            self._reset()
            raise
        self._at_start = at_start
        return text

    def flush(self) -> str:
        """End the sequence: the pending bytes decoded with `errors`; the decoder then starts afresh."""
        try:
            return self._utf8.decode(b"", final=True)
        finally:
            self._reset()

    @property
    def pending(self) -> bytes:
        """Bytes fed but not yet returned (the start of an incomplete character)."""
        return self._utf8.getstate()[0]
