"""`Encoding`: an immutable byte-level BPE tokenizer with tiktoken's API, semantics and ids.

>>> enc = Encoding("toy", pat_str=r"\\S+|\\s+", mergeable_ranks={bytes([i]): i for i in range(256)} | {b"hi": 256},
...                special_tokens={"<|end|>": 257})
>>> enc.encode("hi hix")
[256, 32, 256, 120]
>>> enc.encode("hi<|end|>", allowed_special="all"), enc.count("hi hix")
([256, 257], 4)
>>> enc.decode([256, 32, 257])
'hi <|end|>'

The hot path (`encode_ordinary`, and `encode`/`count` between special tokens) is the native core
(`_native.BpeCore`, our own C in service/native/): it pre-splits in C (hand-written scanners for the
hottest patterns, the general matcher compiled by `tokend.engine.splitting` for any other pattern in its
subset; both equal to the `regex` module's matches), looks each piece up in the vocabulary, then in a
bounded piece cache, and only then runs the BPE merge; `count` never builds a list. A pattern outside the
subset (see splitting.syntax) is split by the `regex` module and the pieces go through the same core.
`splitter=` (ours, keyword-only) replaces findall over `pat_str` with another split: a `Splitter`
(findall, e.g. in the oniguruma dialect) or a `SplitterChain` (Hugging Face's Split / Sequence of Splits,
"Isolated"); `pat_str` is then only recorded. Measured: docs/bench-engine.md.
Rejected (with numbers in git history, 2026-11-25): a pure-Python hot path (word-chunk cache, stdlib-`re`
ASCII patterns, dict piece cache, heap BPE in Python): 0.25-0.74x tiktoken on unseen text, because the
`regex` pass alone runs at ~13 MB/s and a Python merge costs ~1 us per step.

Thread safety: an Encoding is immutable except the core's piece cache; the core works with the GIL held,
so calls from several threads are safe (and serialised). The `*_batch` methods keep tiktoken's
`num_threads` parameter but run in the calling thread (run batches in processes, as the server does).

Not handled: `encode_with_unstable` (tiktoken's completion helper; no caller of ours needs it).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
import secrets
from types import MappingProxyType
from typing import AbstractSet, Literal

import regex

from ..errors import DisallowedSpecialTokenError, ModelFormatError, UnknownTokenIdError
from ._native import BpeCore
from .piece_cache import DEFAULT_CAPACITY, DEFAULT_MAX_PIECE_BYTES, MAX_CAPACITY, PieceCacheStats
from .special_tokens import resolve_policy, special_token_regex
from .splitting import Splitter, SplitterChain, compile_splitter
from .vocabulary_checks import check_vocabulary

__all__ = ["Encoding"]

_EMPTY: frozenset[str] = frozenset()
# Below this many disallowed strings, `token in text` scans (C, memchr-fast) beat one regex search.
_SUBSTRING_PRECHECK_LIMIT = 16
# Seeds the core's hash tables, per process, so no input can be precomputed to make lookups collide.
_HASH_SEED = secrets.randbits(64)


def _fix_surrogates(text: str) -> str:
    # tiktoken's fix-up for text that is not valid Unicode scalar values: pairs of surrogates become the
    # character they encode, lone surrogates become U+FFFD. Encode then does not round-trip, as in tiktoken.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Encoding:
    """Byte-level BPE with regex pre-splitting and special tokens; same constructor as `tiktoken.Encoding`.

    `piece_cache_capacity` (keyword-only, ours) bounds the piece cache (entries per generation; 0 disables
    it). Memory bound: see piece_cache. `splitter` (keyword-only, ours): see the module docstring.
    """

    def __init__(
        self,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: Mapping[bytes, int],
        special_tokens: Mapping[str, int],
        explicit_n_vocab: int | None = None,
        piece_cache_capacity: int = DEFAULT_CAPACITY,
        splitter: Splitter | SplitterChain | None = None,
    ) -> None:
        self.name = name
        self._pat_str = pat_str
        ranks = dict(mergeable_ranks)  # bytes -> rank (= id)
        specials = dict(special_tokens)  # str -> id
        check_vocabulary(name, ranks, specials, explicit_n_vocab)
        self._ranks = ranks
        self._special_tokens = specials
        self.max_token_value = max(max(ranks.values()), max(specials.values(), default=0))
        self._explicit_splitter = splitter
        self._pattern = None  # the `regex` module's compiled pat_str, when that is what splits
        if splitter is None:
            try:
                self._pattern = regex.compile(pat_str)
            except regex.error as exc:
                raise ModelFormatError(f"encoding {name!r}: split pattern does not compile: {exc}") from None
            try:
                splitter = compile_splitter(pat_str)
            except ModelFormatError:
                splitter = None  # outside the native subset: the regex module splits
        if isinstance(splitter, Splitter):
            native_splitter = splitter.native_splitter("findall")
        elif isinstance(splitter, SplitterChain):
            native_splitter = splitter.native_splitter()
        elif splitter is None:
            native_splitter = None
        else:
            raise TypeError(f"splitter must be a Splitter or SplitterChain, got {type(splitter).__name__}")
        self._native_split = native_splitter is not None
        self._special_set = frozenset(specials)
        self._special_ids = frozenset(specials.values())
        # id -> bytes, for decoding (special tokens decode to their UTF-8 text, as in tiktoken)
        self._decoder: dict[int, bytes] = {rank: token for token, rank in ranks.items()}
        self._decoder.update((token_id, text.encode("utf-8")) for text, token_id in specials.items())
        self._piece_cache_capacity = piece_cache_capacity
        if not 0 <= piece_cache_capacity <= MAX_CAPACITY:
            raise ValueError(f"piece_cache_capacity must be in 0..{MAX_CAPACITY}, got {piece_cache_capacity}")
        try:
            self._core = BpeCore(
                ranks,
                native_splitter,
                cache_capacity=piece_cache_capacity,
                max_cached_piece_bytes=DEFAULT_MAX_PIECE_BYTES,
                hash_seed=_HASH_SEED,
            )
        except (TypeError, ValueError) as exc:  # e.g. a rank beyond 32 bits
            raise ModelFormatError(f"encoding {name!r}: {exc}") from None
        if self._native_split:
            self._encode_text, self._count_text, self._split = self._core.encode, self._core.count, self._core.split
        else:
            encode_pieces, count_pieces = self._core.encode_pieces, self._core.count_pieces
            pattern = self._pattern
            if pattern.groups:  # findall would return the groups; tiktoken splits on whole matches
                findall = lambda text: [match.group() for match in pattern.finditer(text)]  # noqa: E731
            else:
                findall = pattern.findall
            self._encode_text = lambda text: encode_pieces(findall(text))
            self._count_text = lambda text: count_pieces(findall(text))
            self._split = findall

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    # ---- encoding ---------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of `text`, treating special-token text as plain text.

        >>> enc.encode_ordinary("hello world")  # doctest: +SKIP
        [15339, 1917]
        """
        try:
            return self._encode_text(text)
        except UnicodeEncodeError:
            return self._encode_text(_fix_surrogates(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Ids of `text`; special tokens per tiktoken's rules (see `special_tokens`).

        >>> enc.encode("<|endoftext|>", allowed_special={"<|endoftext|>"})  # doctest: +SKIP
        [100257]
        >>> enc.encode("<|endoftext|>")  # doctest: +SKIP
        Traceback (most recent call last):
        tokend.errors.DisallowedSpecialTokenError: Encountered text corresponding to disallowed special token ...
        """
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for match in special_token_regex(allowed).finditer(text):
            ids += self.encode_ordinary(text[start : match.start()])
            ids.append(self._special_tokens[match.group()])
            start = match.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ):
        """`encode` as a numpy uint32 array (numpy is imported here: install it to use this).

        Text without allowed special tokens goes straight from the native core's buffer into the array,
        without a list in between (as tiktoken does). Deviation: lone surrogates are repaired as in
        `encode` (tiktoken's encode_to_numpy raises UnicodeEncodeError for them).
        >>> enc.encode_to_numpy("hello world")  # doctest: +SKIP
        array([15339,  1917], dtype=uint32)
        """
        import numpy

        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if allowed or not self._native_split:
            return numpy.array(self.encode(text, allowed_special=allowed, disallowed_special=()), dtype=numpy.uint32)
        try:
            buffer = self._core.encode_buffer(text)
        except UnicodeEncodeError:
            buffer = self._core.encode_buffer(_fix_surrogates(text))
        return numpy.frombuffer(buffer, dtype=numpy.uint32)

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
        """`encode_ordinary` of each text (in this thread; `num_threads` is accepted for compatibility)."""
        return [self.encode_ordinary(item) for item in text]

    def encode_batch(
        self,
        text: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[list[int]]:
        """`encode` of each text; a disallowed special token raises with `.item` = its index."""
        for index, item in enumerate(text):
            self._check_specials(item, allowed_special, disallowed_special, index)
        return [
            self.encode(item, allowed_special=allowed_special, disallowed_special=()) for item in text
        ]

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ids for arbitrary bytes (need not be UTF-8); identical to tiktoken's `_encode_bytes`.

        The valid UTF-8 prefix is encoded as text; the rest, together with the last piece of that prefix
        (extended over trailing whitespace tokens), is encoded as a single piece.
        >>> enc.decode_bytes(enc.encode_bytes(b"caf\\xc3"))  # doctest: +SKIP
        b'caf\\xc3'
        """
        data = bytes(data)
        try:
            return self.encode_ordinary(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            valid_up_to = exc.start
        pieces = self._split(data[:valid_up_to].decode("utf-8"))
        ids = self._core.encode_pieces(pieces[:-1])
        last_ids = self._core.encode_pieces(pieces[-1:])
        last_len = len(last_ids)
        ids += last_ids
        if last_len and self._is_all_space(ids[-last_len]):
            while last_len < len(ids) and self._is_all_space(ids[-last_len - 1]):
                last_len += 1
        if ids and last_len:
            unstable = b"".join(self._decoder[token] for token in ids[-last_len:]) + data[valid_up_to:]
            del ids[-last_len:]
        else:
            unstable = data[valid_up_to:]
        if unstable:
            ids += self._core.encode_piece(unstable)
        return ids

    _encode_bytes = encode_bytes  # tiktoken's private name

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of a single token given as text or bytes (special tokens included); KeyError otherwise."""
        token = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
        rank = self._ranks.get(token)
        if rank is not None:
            return rank
        try:
            return self._special_tokens[token.decode("utf-8")]
        except (UnicodeDecodeError, KeyError):
            raise KeyError(text_or_bytes) from None

    # ---- counting (ours) ----------------------------------------------------------------------------

    def count_ordinary(self, text: str) -> int:
        """`len(encode_ordinary(text))` without building the list."""
        try:
            return self._count_text(text)
        except UnicodeEncodeError:
            return self._count_text(_fix_surrogates(text))

    def count(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> int:
        """`len(encode(text, ...))`, with the same special-token rules and errors."""
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if not allowed:
            return self.count_ordinary(text)
        total = 0
        start = 0
        for match in special_token_regex(allowed).finditer(text):
            total += self.count_ordinary(text[start : match.start()]) + 1
            start = match.end()
        return total + self.count_ordinary(text[start:])

    def count_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """`count` of each text; a disallowed special token raises with `.item` = its index."""
        for index, item in enumerate(texts):
            self._check_specials(item, allowed_special, disallowed_special, index)
        return [self.count(item, allowed_special=allowed_special, disallowed_special=()) for item in texts]

    # ---- decoding -----------------------------------------------------------------------------------

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

    # ---- vocabulary ---------------------------------------------------------------------------------

    def token_byte_values(self) -> list[bytes]:
        """Every mergeable token's bytes, sorted (as tiktoken)."""
        return sorted(self._ranks)

    @property
    def eot_token(self) -> int:
        return self._special_tokens["<|endoftext|>"]

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    def is_special_token(self, token: int) -> bool:
        return token in self._special_ids

    @property
    def n_vocab(self) -> int:
        return self.max_token_value + 1

    @property
    def pattern(self) -> str:
        return self._pat_str

    @property
    def _mergeable_ranks(self) -> dict[bytes, int]:  # tiktoken's private name, used by some callers
        return self._ranks

    @property
    def mergeable_ranks(self) -> Mapping[bytes, int]:
        return MappingProxyType(self._ranks)

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return MappingProxyType(self._special_tokens)

    def piece_cache_stats(self) -> PieceCacheStats:
        """Hits, misses, learned entries and capacity of the piece cache (for metrics)."""
        hits, misses, size, capacity = self._core.cache_stats()
        return PieceCacheStats(hits=hits, misses=misses, size=size, capacity=capacity)

    # ---- pickling: rebuild from plain data (the cache is not state) --------------------------------

    def __getstate__(self) -> dict:
        return {
            "name": self.name,
            "pat_str": self._pat_str,
            "mergeable_ranks": self._ranks,
            "special_tokens": self._special_tokens,
            "piece_cache_capacity": self._piece_cache_capacity,
            "splitter": self._explicit_splitter,
        }

    def __setstate__(self, state: dict) -> None:
        name = state.pop("name")
        self.__init__(name, **state)

    # ---- private ------------------------------------------------------------------------------------

    def _check_specials(self, text, allowed_special, disallowed_special, item) -> frozenset[str]:
        """Raise for a disallowed string in `text`; return the allowed special tokens."""
        if disallowed_special == "all" and not allowed_special and isinstance(disallowed_special, str):
            allowed, disallowed = _EMPTY, self._special_set  # the default policy, without set arithmetic
        else:
            allowed, disallowed = resolve_policy(
                self._special_set, allowed_special=allowed_special, disallowed_special=disallowed_special
            )
        if disallowed:
            if len(disallowed) > _SUBSTRING_PRECHECK_LIMIT or any(token in text for token in disallowed):
                match = special_token_regex(disallowed).search(text)
                if match is not None:
                    raise DisallowedSpecialTokenError(match.group(), match.start(), item)
        if allowed and not any(token in text for token in allowed):
            return _EMPTY
        return allowed

    def _is_all_space(self, token: int) -> bool:
        token_bytes = self._decoder.get(token)
        return token_bytes is not None and all(byte in b" \n\t" for byte in token_bytes)

    def _raise_unknown(self, tokens: Sequence[int], item: int | None) -> None:
        for token in tokens:
            if token not in self._decoder:
                raise UnknownTokenIdError(token, item, n_vocab=self.n_vocab) from None

