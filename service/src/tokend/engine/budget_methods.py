"""`BudgetMethods`: offsets, truncation, chunking and streaming decode for every encoding family.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> enc.encode_with_offsets("hello world").spans()
[(0, 5), (5, 11)]
>>> enc.truncate("hello world, hello moon", 3).text
'hello world,'
>>> [c.text for c in enc.chunk("One. Two. Three.", 3, prefer="sentence")]
['One.', ' Two.', ' Three.']
>>> decoder = enc.decoder()
>>> decoder.feed(enc.encode("hé")) + decoder.flush()
'hé'

A family class (byte-level BPE `Encoding`, SentencePiece, ...) inherits these methods and implements the
engine contract (`encode`, `count`, `decode`, `special_tokens_set`, ...) plus ONE hook:

    token_surfaces(tokens, *, at_start=True) -> (surfaces: list[bytes], at_start_after: bool)

`surfaces[i]` is what token i adds to the decoded bytes when `tokens` follow a decoded prefix in state
`at_start` (True: the start of a sequence, nothing visible decoded yet); `at_start_after` is the state after
them. Required of every family:
1. Decoding: `b"".join(token_surfaces(ids)[0]) == decode_bytes(ids)` and
   `decode(ids, errors) == decode_bytes(ids).decode("utf-8", errors)`.
2. Splitting: for ids = a + b, `token_surfaces(ids, at_start=s)` equals the surfaces of `a` from state `s`
   followed by those of `b` from the state `a` leaves — so a stream can be decoded piecewise.
3. Unknown ids raise `UnknownTokenIdError` (a KeyError), before anything else happens.
4. Spelling (for offsets, truncate, chunk): the surfaces of `encode(text)` from the state
   `spelling_at_start` spell the UTF-8 of the text (lone surrogates repaired as the engine does) followed,
   when there are tokens, by `spelling_suffix`. Both are optional attributes of the family: True and ""
   unless it says otherwise. Where a family's normalizer rewrites text this fails, and those methods raise
   `OffsetsUnavailableError` naming the first differing character.
Byte-level BPE: each token's bytes, whatever the state, and the state is False after any token.
SentencePiece: control tokens (`<s>`) add b"" and keep the state; while `at_start`, a piece's leading
"▁" is dropped when the model adds a dummy prefix (then the state is False: one space only); every other
"▁" becomes b" "; byte-fallback pieces `<0xNN>` add their byte. With an identity normalizer that spells
the text: the dummy prefix is the dropped "▁", so the first token may have an empty span. A model with
`treat_whitespace_as_suffix` puts the dummy "▁" last ("Hi" -> "Hi▁") while `decode` still drops a leading
one: it spells from `spelling_at_start=False` (a leading "▁" is the text's space) with `spelling_suffix`
" " (its dummy mark, when it adds one), so the last token's span stops where the text ends.

Nothing here asks which class it is working on: only the contract and the hook.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import AbstractSet, Literal

from .chunking import Chunk, chunk, iter_chunks
from .offsets import TokenOffsets, encode_with_offsets
from .stream_decoder import StreamDecoder
from .truncation import Truncation, truncate

__all__ = ["BudgetMethods"]


class BudgetMethods:
    """Mixin: the budget operations, written once over the engine contract and `token_surfaces`."""

    __slots__ = ()

    def token_surfaces(self, tokens: Sequence[int], *, at_start: bool = True) -> tuple[list[bytes], bool]:
        """The family hook (see the module docstring); every family class implements it."""
        raise NotImplementedError(f"{type(self).__name__} must implement token_surfaces (see tokend.engine.budget_methods)")

    def encode_with_offsets(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> TokenOffsets:
        """`encode(text)` plus each token's character span (into `text`) and byte span (into its UTF-8).

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> enc.encode_with_offsets("a😀").spans()
        [(0, 1), (1, 2), (1, 2)]
        """
        return encode_with_offsets(self, text, allowed_special=allowed_special, disallowed_special=disallowed_special)

    def truncate(
        self,
        text: str,
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> Truncation:
        """The longest prefix ("right": cut the end off) or suffix ("left") of `text` whose own encoding has
        at most `max_tokens` tokens, cut at a token boundary that is a character boundary; `.ids` is
        `encode(.text)`. Definitions: tokend.engine.truncation.

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> enc.truncate("hello world", 1).text, enc.truncate("hello world", 1, side="left").text
        ('hello', ' world')
        """
        return truncate(
            self, text, max_tokens, side, allowed_special=allowed_special, disallowed_special=disallowed_special
        )

    def truncate_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[Truncation]:
        """`truncate` of each text, in order (the remote client sends them as one batched request):
        `[kept.text for kept in enc.truncate_batch(["hello world", "bye"], 1)]` is `['hello', 'bye']`."""
        return [
            self.truncate(text, max_tokens, side, allowed_special=allowed_special, disallowed_special=disallowed_special)
            for text in texts
        ]

    def chunk(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        max_chunks: int | None = None,
    ) -> list[Chunk]:
        """`text` in consecutive chunks of at most `max_tokens` tokens each (own encoding), `overlap` tokens
        shared between neighbours, cut preferably at `prefer` separators; more than `max_chunks` chunks
        raise InvalidBudgetError (a bound for services). Definitions: tokend.engine.chunking.

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> [c.text for c in enc.chunk("a b c d", 2, prefer="whitespace")]
        ['a b', ' c d']
        """
        return chunk(
            self,
            text,
            max_tokens,
            overlap,
            prefer,
            allowed_special=allowed_special,
            disallowed_special=disallowed_special,
            max_chunks=max_chunks,
        )

    def chunk_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        overlap: int = 0,
        prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        max_chunks: int | None = None,
    ) -> list[list[Chunk]]:
        """`chunk` of each text, in order (`max_chunks` bounds each text's chunks)."""
        return [
            self.chunk(
                text, max_tokens, overlap, prefer, allowed_special=allowed_special,
                disallowed_special=disallowed_special, max_chunks=max_chunks,
            )  # fmt: skip
            for text in texts
        ]

    def iter_chunks(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        max_chunks: int | None = None,
    ) -> Iterator[Chunk]:
        """`chunk`, one chunk at a time (to stream a big document's chunks out as they are made); argument
        and special-token errors are raised by this call, not by the first `next`."""
        return iter_chunks(
            self,
            text,
            max_tokens,
            overlap,
            prefer,
            allowed_special=allowed_special,
            disallowed_special=disallowed_special,
            max_chunks=max_chunks,
        )

    def decoder(self, errors: str = "replace") -> StreamDecoder:
        """An incremental decoder: `feed(ids) -> str` returns only complete characters, `flush()` the rest.

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> d = enc.decoder()
        >>> [d.feed([token]) for token in enc.encode("😀")], d.flush()
        (['', '😀'], '')
        """
        return StreamDecoder(self, errors)
