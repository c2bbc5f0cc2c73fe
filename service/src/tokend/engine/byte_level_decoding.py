"""`ByteLevelDecoding`: the byte-level `Encoding`'s decode calls (ids -> bytes -> text).

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> enc.decode([15339, 1917]), enc.decode_tokens_bytes([15339, 1917])
('hello world', [b'hello', b' world'])
>>> enc.decode_with_offsets([15339, 1917])
('hello world', [0, 5])

Every id is a whole number of bytes: a token's bytes (the rank's key), a special or added token's UTF-8
text, or a model's extra decoder entry; the text is their join, decoded as UTF-8. An unknown id raises
`UnknownTokenIdError` (a KeyError) naming it and, in a batch, its item. A mixin of `Encoding` only: it reads
the encoding's model, ranks and special tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from itertools import islice

from ..errors import UnknownTokenIdError
from .byte_level_alphabet import token_text_to_bytes

__all__ = ["ByteLevelDecoding"]

_DECODER_SLICE = 8192  # entries per update of the decoder as it is built (~0.5 ms of the GIL each)


class ByteLevelDecoding:
    """Mixin of `Encoding`: `decode`, `decode_bytes`, their batch forms, offsets and the budget hook."""

    __slots__ = ()

    @cached_property
    def _decoder(self) -> dict[int, bytes]:
        """id -> bytes, for decoding; built at the first decode (a cold start that only encodes skips it).
        Special and added tokens decode to their UTF-8 text (as in tiktoken), or for a tokenizer.json with a
        ByteLevel decoder as that decoder reads them (`added_tokens_byte_level`); of two
        special tokens sharing an id, the first listed wins (tiktoken's o200k_harmony). Two threads may
        both build it the first time: the same dict, one kept."""
        decoder: dict[int, bytes] = dict(self._model.extra_decoder)
        ranks = zip(self._ranks.values(), self._ranks.keys())
        # A slice at a time: one update of o200k_base's 200,000 entries is a single C call that held a
        # server worker's GIL ~18 ms, every other call of the worker waiting; between slices it can switch
        # (the dict's resizes as it grows stay single steps, the last ~5-9 ms at this size).
        while entries := list(islice(ranks, _DECODER_SLICE)):
            decoder.update(entries)
        for text, token_id in reversed(list(self._special_tokens.items())):
            decoder[token_id] = text.encode("utf-8")
        spell = _byte_level_or_utf8 if self._model.added_tokens_byte_level else _utf8
        decoder.update((token.id, spell(token.content)) for token in self._model.added_tokens)
        return decoder

    @cached_property
    def _longest_token_bytes(self) -> int:
        """At least the bytes of the longest token `decode_single_token_bytes` gives (special, added and
        extra decoder tokens included; a special sharing an id, or an extra decoder entry a rank overrides,
        may make it more), without a pass over the vocabulary: the native core keeps its longest mergeable
        token. A Decode's answer-size bound reads it (tokend.service.token_sizes); finding it by sorting
        o200k_base's 200,000 tokens held a server worker's GIL ~70 ms."""
        others = [
            *self._model.extra_decoder.values(),
            *(text.encode("utf-8") for text in self._special_tokens),
            *(token.content.encode("utf-8") for token in self._model.added_tokens),
        ]
        return max(self._core.longest_token, max(map(len, others), default=0))

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """The bytes of `tokens`; an unknown id raises `UnknownTokenIdError` (a KeyError)."""
        try:
            return b"".join(map(self._decoder.__getitem__, tokens))
        except KeyError:
            self._raise_unknown(tokens, None)
            raise

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """The text of `tokens`; invalid UTF-8 is replaced unless `errors="strict"` (UnicodeDecodeError)."""
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token (special tokens included)."""
        try:
            return self._decoder[token]
        except KeyError:
            raise UnknownTokenIdError(token, n_vocab=self.n_vocab) from None

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """The bytes of each token: `[b'hello', b' world']`."""
        return [self.decode_single_token_bytes(token) for token in tokens]

    def token_surfaces(self, tokens: Sequence[int], *, at_start: bool = True) -> tuple[list[bytes], bool]:
        """The budget hook (budget_methods): each token's bytes, whatever the state; no leading-space rule."""
        try:
            surfaces = list(map(self._decoder.__getitem__, tokens))
        except (KeyError, TypeError):
            self._raise_unknown(tokens, None)
            raise
        return surfaces, at_start and not surfaces

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """The text and, per token, the index of the first character containing its bytes (as tiktoken)."""
        token_bytes = self.decode_tokens_bytes(tokens)
        text_len = 0
        offsets = []
        for token in token_bytes:
            offsets.append(max(0, text_len - (0x80 <= token[0] < 0xC0)))
            text_len += sum(1 for byte in token if not 0x80 <= byte < 0xC0)
        return b"".join(token_bytes).decode("utf-8", errors="strict"), offsets

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        """`decode` of each item; an unknown id raises with `.item` = its index."""
        return [self._decode_bytes_item(tokens, index).decode("utf-8", errors=errors) for index, tokens in enumerate(batch)]

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        """`decode_bytes` of each item; an unknown id raises with `.item` = its index."""
        return [self._decode_bytes_item(tokens, index) for index, tokens in enumerate(batch)]

    def _decode_bytes_item(self, tokens: Sequence[int], item: int | None) -> bytes:
        try:
            return b"".join(map(self._decoder.__getitem__, tokens))
        except KeyError:
            self._raise_unknown(tokens, item)
            raise

    def _raise_unknown(self, tokens: Sequence[int], item: int | None) -> None:
        for token in tokens:
            if token not in self._decoder:
                raise UnknownTokenIdError(token, item, n_vocab=self.n_vocab) from None


def _utf8(text: str) -> bytes:
    return text.encode("utf-8")


def _byte_level_or_utf8(text: str) -> bytes:
    # At most as long as its UTF-8 (a character of the alphabet is one byte): `_longest_token_bytes` holds.
    return token_text_to_bytes(text) or text.encode("utf-8")
