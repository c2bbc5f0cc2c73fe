"""`SentencePieceEncoding`: SentencePiece BPE (Llama 2, Mistral 7B, `spm_train --model_type=bpe`) and Unigram
(`spm_train`'s default, T5-style vocabularies) with the engine's tiktoken-shaped API and sentencepiece's exact ids.

>>> from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel
>>> model = SentencePieceModel(  # a toy vocabulary: ids 0-2 special, then pieces with their merge scores
...     pieces=("<unk>", "<s>", "</s>", "\u2581", "h", "i", "\u2581h", "\u2581hi", "!"),
...     scores=(0, 0, 0, -5, -6, -7, -2, -1, -8),
...     types=(PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL) + (PieceType.NORMAL,) * 6,
...     normalizer=NormalizerSpec(name="identity", remove_extra_whitespaces=False))
>>> enc = SentencePieceEncoding("toy", model=model)   # or .from_model_file(name, the .model file's bytes)
>>> enc.encode("hi hi!")                 # == SentencePieceProcessor.encode: no BOS/EOS
[7, 7, 8]
>>> enc.decode([1, 7, 7, 8])             # == SentencePieceProcessor.decode: <s> is invisible
'hi hi!'
>>> enc.encode("<s>hi", allowed_special={"<s>"}), enc.encode_with_offsets("hi hi").spans()
([1, 7], [(0, 2), (2, 5)])

What sentencepiece does, and we do identically (checked against `sentencepiece` in tests/engine/sentencepiece):
normalizer (identity or a precompiled charsmap such as nmt_nfkc; dummy prefix; extra whitespace; `▁`),
user-defined pieces matched longest-first and never merged, merges by piece score (leftmost on ties), UNUSED
pieces split again, byte fallback (`<0xNN>`) else one `<unk>` per run of unknown characters; for Unigram
models sentencepiece's Viterbi (its float roundings included) instead of the merges. The hot path is the
native core (`_native.SentencePieceCore`, service/native/sp_*.c) with a piece cache (BPE; Unigram sentences
are decoded whole, uncached); `reference.py` is the same algorithms in Python (`native=False`, for tests).

Special tokens (tiktoken's policy: the default refuses them in text):
- `special_tokens` are the CONTROL pieces (`<s>`, `</s>`, Mistral's `[INST]`, ...) and the UNKNOWN piece
  (`<unk>`): pieces sentencepiece never produces from text. `encode_ordinary` (and sentencepiece) treat their
  text as plain text.
- An *allowed* special token in the text becomes its id, and the text between special tokens is encoded as
  separate sentences: each gets the dummy prefix and its own whitespace handling. So with
  `allowed_special="all"`, "<s>Hi" gives [bos, ▁Hi], exactly what llama.cpp (`parse_special`) and Hugging
  Face's legacy Llama tokenizer give; HF with `legacy=False` omits the `▁` after a special token.
- USER_DEFINED pieces are not special tokens: like sentencepiece, we always match them in text.

Decoding is sentencepiece's (surface.py): control pieces vanish, `<unk>` reads " ⁇ ", `▁` is a space and the
leading one is dropped, runs of byte pieces are UTF-8 with sentencepiece's per-byte replacement.
- `decode_tokens_bytes(ids)`: the bytes each token contributes at its position (prefix-stable, so
  `surface_decoder()` can stream them); `b"".join(...) == decode_bytes(ids)`.
- `decode_single_token_bytes(id)`: a token's bytes in the middle of a text (`▁Hello` -> b" Hello"; `<s>` -> b"").
- `decode_with_offsets(ids)`: the decoded text and, per token, the index of the first character that holds
  its bytes (a token with no bytes gets the index where the next character starts).
- `encode_single_token` takes a piece as sentencepiece spells it ("▁Hello", "<0x0A>", "<s>").

Family additions (keyword-free properties): `algorithm`, `bos_id`, `eos_id`, `unk_id`, `pad_id`,
`normalizer_name`, `model`, `user_defined_pieces`, `id_to_piece`, `piece_to_id`, `piece_type`, `normalize`.

Deviations: lone surrogates in a str are repaired as tiktoken does (U+FFFD) where sentencepiece's binding
raises; `encode_bytes(data)` is sentencepiece's encoding of raw bytes (each malformed byte becomes U+FFFD),
so unlike tiktoken's it does not round-trip invalid UTF-8. `pattern` is "" (there is no split regex).
Budget operations (offsets, truncate, chunk, `decoder()`; budget_methods) work through `token_surfaces`, where
the tokens spell the text: identity-normalizer models (Llama 2, Mistral) always do (with byte fallback); a model
whose normalizer rewrites text (nmt_nfkc, collapsed whitespace, no byte fallback for an unknown character)
raises `OffsetsUnavailableError` naming the first character that differs, as tokend does for NFC and
prefix-space byte-level models (sentencepiece's normalized-to-original alignment is not carried over).
With `treat_whitespace_as_suffix` the dummy "▁" is the last token's ("Hi" -> "Hi▁"): offsets hold the text
plus that space (`spelling_suffix`) and give it no span, as sentencepiece's piece spans do; a leading "▁" is
a space of the text there, though `decode` drops it as sentencepiece's does (`spelling_at_start=False`).
`decoder()` decodes byte runs by sentencepiece's rule, as `decode` (stream_decoder.py: a control piece ends a
run, one U+FFFD a malformed byte), so its feeds and flush join to `decode`'s text for any split.
Not handled: sampling (BPE-dropout), n-best.
"""

from __future__ import annotations

import operator
import secrets
from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import AbstractSet, Literal

from ...errors import DisallowedSpecialTokenError, ModelFormatError, UnknownTokenIdError
from ..budget_methods import BudgetMethods
from ..literal_alternation import check_literal_set
from ..normalized_texts import current_keeper, kept_normalized
from ..piece_cache import DEFAULT_MAX_PIECE_BYTES, MAX_CAPACITY, PieceCacheStats
from ..special_tokens import resolve_policy, special_token_regex, split_at_specials
from ..surrogates import fix_surrogates
from ._native import SentencePieceCore
from .model_file import PieceType, SentencePieceModel, load_sentencepiece_model
from .reference import ReferenceEncoder
from .stream_decoder import SentencePieceStreamDecoder
from .surface import SurfaceDecoder, SurfaceTable, character_offsets, decode_text

__all__ = ["SentencePieceEncoding", "ALGORITHM", "ALGORITHMS"]

ALGORITHM = "sentencepiece-bpe"
ALGORITHMS = {"bpe": ALGORITHM, "unigram": "sentencepiece-unigram"}  # model type -> `algorithm`
# Entries per cache generation (2.9 MB in all, piece_cache.py). Smaller than the byte-level default (65,536):
# measured on Mistral 7B's model, steady state on text unlike the warm-up, MB/s for capacity 0 / 4,096 /
# 16,384 / 65,536 in one run: English 22 / 32 / 37 / 35, code 23 / 30 / 35 / 33, multilingual 29 / 34 / 32 / 29
# (runs on this shared machine vary by +-30 %). A bigger cache gains few hits and probably pushes the pair
# table out of L2 (2 MB per core here).
DEFAULT_CAPACITY = 16_384
_EMPTY: frozenset[str] = frozenset()
_SUBSTRING_PRECHECK_LIMIT = 16
_LENGTH_SLICE = 16384  # pieces measured per C call in _longest_token_bytes (~0.3 ms of the GIL each)
_HASH_SEED = secrets.randbits(64)
# What the normalizer may make of a text at most: 16 times its bytes + 1 KB (SP_MAX_EXPANSION and
# SP_EXPANSION_SLACK in sp_native.h; past it the core refuses the text).
MAX_NORMALIZED_GROWTH = 16
NORMALIZED_SLACK = 1024
# Characters normalized per call when `working_text_bytes` measures a text: each slice's output is at most
# 16 x 256 KB + 1 KB, held only until its length is read.
_MEASURE_SLICE_CHARS = 65_536
# working_text_weight of a BPE model with UNUSED pieces: its whole-sentence merge held 25-37 bytes a byte of
# normalized text (VmHWM, 1-4 MiB of letters, digits, "a", English words on the edited `unused` test model) where
# the service reserves 20.
UNUSED_WEIGHT = 2
_SPECIAL_TYPES = (PieceType.CONTROL, PieceType.UNKNOWN)


class SentencePieceEncoding(BudgetMethods):
    """SentencePiece BPE or Unigram over one model; the engine contract's methods with sentencepiece's ids,
    and the budget operations (offsets, truncate, chunk, decoder) through `token_surfaces`.

    `piece_cache_capacity` bounds the native core's piece cache (see piece_cache.py; 0 disables it; the
    cached unit is a segment of the normalized text, see sp_module.c).
    `native=False` uses the Python reference encoder instead of the native core (tests; slow).
    """

    # An allowed special token in the text ends a stretch: the text after it is encoded as a text of its
    # own (its own dummy prefix), and a control piece spells nothing, so offsets align stretch by stretch.
    specials_restart_text = True

    def __init__(
        self,
        name: str,
        *,
        model: SentencePieceModel,
        piece_cache_capacity: int = DEFAULT_CAPACITY,
        native: bool = True,
    ) -> None:
        if not 0 <= piece_cache_capacity <= MAX_CAPACITY:
            raise ValueError(f"piece_cache_capacity must be in 0..{MAX_CAPACITY}, got {piece_cache_capacity}")
        self.name = name
        self.algorithm = ALGORITHMS[model.model_type]  # "sentencepiece-bpe" or "sentencepiece-unigram"
        self._model = model
        self._piece_cache_capacity = piece_cache_capacity
        pieces = model.pieces
        self._piece_ids = {piece: index for index, piece in enumerate(pieces)}  # piece text -> id
        self._special_tokens = {p: i for i, (p, t) in enumerate(zip(pieces, model.types)) if t in _SPECIAL_TYPES}
        self._special_set = frozenset(self._special_tokens)
        try:  # every call's special-token patterns are built from these
            check_literal_set(self._special_set)
        except ValueError as error:
            raise ModelFormatError(f"sentencepiece model {name!r}: control pieces: {error}") from None
        # The first characters of the special tokens: text without any of them needs no regex search (Mistral's
        # models have ~750 control pieces, nearly all starting with "[" or "<").
        self._special_firsts = frozenset(token[0] for token in self._special_tokens)
        self._surfaces = SurfaceTable(model)
        spec = model.normalizer
        # How the tokens of encode(text) spell the text (budget_methods, rule 4). With treat_whitespace_as_suffix
        # the dummy mark comes last ("Hi" -> "Hi▁") and a leading "▁" is a space of the text, which `decode`
        # still drops at the start (sentencepiece's rule knows no suffix): the tokens spell the text with their
        # mid-sequence surfaces, followed by the dummy mark's space.
        suffix = model.treat_whitespace_as_suffix
        self.spelling_at_start = not suffix
        self.spelling_suffix = " " if suffix and spec.add_dummy_prefix else ""
        try:
            self._core = SentencePieceCore(
                [piece.encode("utf-8") for piece in pieces],
                list(model.scores),
                bytes(int(t) for t in model.types),
                charsmap=spec.precompiled_charsmap,
                add_dummy_prefix=spec.add_dummy_prefix,
                remove_extra_whitespaces=spec.remove_extra_whitespaces,
                escape_whitespaces=spec.escape_whitespaces,
                treat_whitespace_as_suffix=model.treat_whitespace_as_suffix,
                byte_fallback=model.byte_fallback,
                cache_capacity=piece_cache_capacity,
                max_cached_piece_bytes=DEFAULT_MAX_PIECE_BYTES,
                hash_seed=_HASH_SEED,
                unigram=model.model_type == "unigram",
            )
        except (TypeError, ValueError) as error:
            raise ModelFormatError(f"sentencepiece model {name!r}: {error}") from None
        self.native = native
        if native:
            self._encode_text, self._count_text = self._core.encode, self._core.count
            self._encode_raw = self._core.encode_bytes
        else:
            reference = ReferenceEncoder(model)
            self._encode_text = reference.encode
            self._count_text = lambda text: len(reference.encode(text))
            self._encode_raw = reference.encode_bytes

    @classmethod
    def from_model_file(cls, name: str, data: bytes, **options) -> SentencePieceEncoding:
        """Load a sentencepiece `.model` file's bytes (`ModelFormatError` for what we cannot encode with)."""
        return cls(name, model=load_sentencepiece_model(data, what=f"sentencepiece model {name!r}"), **options)

    def __repr__(self) -> str:
        return f"<SentencePieceEncoding {self.name!r}>"

    # ---- encoding ---------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """`SentencePieceProcessor.encode(text)`: no BOS/EOS, special-token text is plain text."""
        normalized = kept_normalized(text, self._core)
        if normalized is not None:  # measured in this call (working_text_bytes): not normalized again
            return self._core.encode_normalized(normalized)
        try:
            return self._encode_text(text)
        except UnicodeEncodeError:
            return self._encode_text(fix_surrogates(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Ids of `text`; special tokens per tiktoken's rules (see the module docstring for what they mean here)."""
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for ordinary, special in split_at_specials(text, allowed):
            ids += self.encode_ordinary(ordinary)
            if special is not None:
                ids.append(self._special_tokens[special])
        return ids

    def encode_to_numpy(self, text: str, *, allowed_special=frozenset(), disallowed_special="all"):
        """`encode` as a numpy uint32 array (numpy is imported here)."""
        import numpy

        ids = self.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
        return numpy.array(ids, dtype=numpy.uint32)

    def encode_ordinary_batch(self, text: Sequence[str], *, num_threads: int = 8) -> list[list[int]]:
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
        return [self.encode(item, allowed_special=allowed_special, disallowed_special=()) for item in text]

    def encode_bytes(self, data: bytes) -> list[int]:
        """sentencepiece's ids for raw bytes: malformed UTF-8 is one U+FFFD per byte (does not round-trip)."""
        normalized = kept_normalized(data, self._core)
        if normalized is not None:
            return self._core.encode_normalized(normalized)
        return self._encode_raw(bytes(data))

    _encode_bytes = encode_bytes

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of one piece as sentencepiece spells it ("▁Hello", "<0x0A>", "<s>"); KeyError otherwise."""
        piece = text_or_bytes if isinstance(text_or_bytes, str) else None
        if piece is None:
            try:
                piece = bytes(text_or_bytes).decode("utf-8")
            except UnicodeDecodeError:
                raise KeyError(text_or_bytes) from None
        try:
            return self._piece_ids[piece]
        except KeyError:
            raise KeyError(text_or_bytes) from None

    # ---- counting ----------------------------------------------------------------------------------

    def count_ordinary(self, text: str) -> int:
        normalized = kept_normalized(text, self._core)
        if normalized is not None:
            return self._core.count_normalized(normalized)
        try:
            return self._count_text(text)
        except UnicodeEncodeError:
            return self._count_text(fix_surrogates(text))

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
        pieces = split_at_specials(text, allowed)
        return sum(self.count_ordinary(ordinary) + (special is not None) for ordinary, special in pieces)

    def count_batch(
        self,
        texts: Sequence[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        for index, item in enumerate(texts):
            self._check_specials(item, allowed_special, disallowed_special, index)
        # num_threads: accepted like the byte-level Encoding's; SentencePiece batches run in this thread
        return [self.count(item, allowed_special=allowed_special, disallowed_special=()) for item in texts]

    # ---- decoding -----------------------------------------------------------------------------------

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """`SentencePieceProcessor.decode(tokens)` (errors="replace"); "strict" raises UnicodeDecodeError."""
        self._check_ids(tokens, None)
        return decode_text(self._surfaces, tokens, errors)

    def decoder(self, errors: str = "replace") -> SentencePieceStreamDecoder:
        """An incremental decoder whose text is `decode`'s (byte runs as sentencepiece decodes them)."""
        return SentencePieceStreamDecoder(self, errors)

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """The bytes of the decoded text before UTF-8 decoding (byte pieces raw)."""
        return b"".join(self.decode_tokens_bytes(tokens))

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """The bytes each token contributes at its position (the leading `▁` rule applied)."""
        return self.token_surfaces(tokens)[0]

    def token_surfaces(self, tokens: Sequence[int], *, at_start: bool = True) -> tuple[list[bytes], bool]:
        """The budget hook (budget_methods): each token's bytes after a decoded prefix in state `at_start`
        (True: nothing visible decoded yet, so a leading `▁` may still be dropped), and the state after."""
        tokens = list(tokens)
        self._check_ids(tokens, None)
        if not at_start:
            return list(map(self._surfaces.surfaces.__getitem__, tokens)), False
        decoder = SurfaceDecoder(self._surfaces)
        return decoder.feed(tokens), decoder.at_start

    def decode_single_token_bytes(self, token: int) -> bytes:
        """A token's bytes in the middle of a text: b" Hello" for "▁Hello", b"" for a control piece."""
        self._check_ids((token,), None)
        return self._surfaces.surfaces[token]

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """The text (as `decode`) and, per token, the index of the first character holding its bytes."""
        token_bytes = self.decode_tokens_bytes(tokens)
        return self.decode(tokens), character_offsets(self._surfaces, tokens, token_bytes)

    def decode_batch(self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8) -> list[str]:
        """`decode` of each item; an unknown id raises with `.item` = its index."""
        result = []
        for index, tokens in enumerate(batch):
            self._check_ids(tokens, index)
            result.append(decode_text(self._surfaces, tokens, errors))
        return result

    def decode_bytes_batch(self, batch: Sequence[Sequence[int]], *, num_threads: int = 8) -> list[bytes]:
        result = []
        for index, tokens in enumerate(batch):
            self._check_ids(tokens, index)
            result.append(b"".join(SurfaceDecoder(self._surfaces).feed(tokens)))
        return result

    def surface_decoder(self) -> SurfaceDecoder:
        """A stateful decoder for streaming: `feed(ids) -> [bytes per token]`, exact across calls (ids unchecked)."""
        return SurfaceDecoder(self._surfaces)

    # ---- vocabulary ---------------------------------------------------------------------------------

    @cached_property
    def _longest_token_bytes(self) -> int:
        """Bytes of the longest token `decode_single_token_bytes` gives, measured a slice of the vocabulary
        at a time: a Decode's answer-size bound reads it (tokend.service.token_sizes) in a server worker,
        where one pass over a 256,000-piece vocabulary in a single C call would hold the GIL for
        milliseconds while the worker's other calls wait."""
        surfaces, longest = self._surfaces.surfaces, 0
        for start in range(0, len(surfaces), _LENGTH_SLICE):
            longest = max(longest, max(map(len, surfaces[start : start + _LENGTH_SLICE])))
        return longest

    def token_byte_values(self) -> list[bytes]:
        """The distinct mid-text bytes of every piece that text can produce (normal, user-defined, unused, byte), sorted."""
        kinds, surfaces = self._surfaces.kinds, self._surfaces.surfaces
        return sorted({surface for surface, kind in zip(surfaces, kinds) if kind >= 2})

    @property
    def model(self) -> SentencePieceModel:
        return self._model

    @property
    def n_vocab(self) -> int:
        return len(self._model.pieces)

    @property
    def max_token_value(self) -> int:
        return len(self._model.pieces) - 1

    @property
    def pattern(self) -> str:
        return ""

    @property
    def special_tokens(self) -> Mapping[str, int]:
        return MappingProxyType(self._special_tokens)

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._special_tokens)

    def is_special_token(self, token: int) -> bool:
        return 0 <= token < self.n_vocab and self._model.types[token] in _SPECIAL_TYPES

    @property
    def eot_token(self) -> int:
        """The end-of-sequence id (`</s>`); KeyError when the model has none."""
        if self.eos_id is None:
            raise KeyError(self._model.eos_piece)
        return self.eos_id

    def _control_id(self, piece: str) -> int | None:
        piece_id = self._piece_ids.get(piece)
        return piece_id if piece_id is not None and self._model.types[piece_id] == PieceType.CONTROL else None

    @property
    def bos_id(self) -> int | None:
        """Id of the BOS piece (`<s>`), None when absent (sentencepiece's -1)."""
        return self._control_id(self._model.bos_piece)

    @property
    def eos_id(self) -> int | None:
        return self._control_id(self._model.eos_piece)

    @property
    def pad_id(self) -> int | None:
        return self._control_id(self._model.pad_piece)

    @property
    def unk_id(self) -> int:
        return self._model.types.index(PieceType.UNKNOWN)

    @property
    def normalizer_name(self) -> str:
        """The normalizer's name as the model states it ("identity", "nmt_nfkc", ...)."""
        return self._model.normalizer.name

    @property
    def user_defined_pieces(self) -> frozenset[str]:
        return frozenset(p for p, t in zip(self._model.pieces, self._model.types) if t == PieceType.USER_DEFINED)

    def id_to_piece(self, token: int) -> str:
        """The piece of an id as the model spells it ("▁Hello", "<0x0A>", "<s>")."""
        self._check_ids((token,), None)
        return self._model.pieces[token]

    def piece_to_id(self, piece: str) -> int | None:
        return self._piece_ids.get(piece)

    def piece_type(self, token: int) -> PieceType:
        self._check_ids((token,), None)
        return self._model.types[token]

    def working_text_bound(self, size: int) -> int:
        """What `working_text_bytes` may be at most for an input of `size` bytes, without looking at it."""
        return MAX_NORMALIZED_GROWTH * size + NORMALIZED_SLACK if self._whole_sentence else size

    @property
    def working_text_weight(self) -> int:
        """How many times the ordinary merge's working state (~20 bytes a byte) the encoder holds a byte of
        `working_text_bytes`: 2 for BPE models with UNUSED pieces of two or more characters, whose whole
        normalized sentence is one merge problem (sp_module.c's encode_sentence: symbol ids, starts, survivors and
        four output slots a symbol in arrays that double, and the merge's links; measured 25-37 bytes a byte of
        normalized text, the most for 1 MiB of random letters, just past a doubling), else 1."""
        return UNUSED_WEIGHT if self._core.has_unused_merges else 1

    @property
    def whole_text_working_state(self) -> bool:
        """Whether the encoder's working state follows the whole normalized text rather than its pieces (Unigram's
        Viterbi, the UNUSED pieces' one merge): a chat template's rendered text is held to twice its conversation's
        bytes for such a model, twelve times for the others (service/chat.py, ``rendered_text_bytes``)."""
        return self._whole_sentence

    @property
    def _whole_sentence(self) -> bool:
        # the encoder's working state follows the whole normalized sentence (not the pieces): Unigram's Viterbi,
        # the UNUSED pieces' one merge problem
        return self.algorithm == ALGORITHMS["unigram"] or self._core.has_unused_merges

    def working_text_bytes(self, text: str | bytes) -> int:
        """The bytes of text the encoder's per-byte working state covers: for Unigram models the normalized text,
        over which the Viterbi holds 20 bytes a byte (sp_unigram.c: 12 of state, 8 of nodes), and which the
        normalizer may make up to 16 times the input (nmt_nfkc turns U+FDFA, 3 bytes, into 39); so for BPE
        models with UNUSED pieces (the whole sentence one merge, `working_text_weight`); for other BPE models
        the input's UTF-8 (their working memory follows the pieces, not the normalized sentence).

        Inside a ``keeping_normalized`` scope (normalized_texts.py) the text is normalized whole, as the encode
        will normalize it, and kept there while it fits the scope's room: the encode of this very object in the
        scope takes it instead of normalizing again (exact: 1 KB of slack is added, as below). Otherwise, or past
        the room, an upper bound within a few bytes a slice: measured by normalizing 65,536 characters at a
        time, so it holds no more than one slice's output.

        >>> from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel
        >>> model = SentencePieceModel(pieces=("<unk>", "\u2581", "a"), scores=(0, -1, -2),
        ...     types=(PieceType.UNKNOWN,) + (PieceType.NORMAL,) * 2, model_type="unigram",
        ...     normalizer=NormalizerSpec(name="identity", remove_extra_whitespaces=False))
        >>> SentencePieceEncoding("toy", model=model).working_text_bytes("a a")   # "▁a▁a": 8 bytes, + 1 KB a slice
        1032
        """
        if not self._whole_sentence:
            return len(text) if isinstance(text, (bytes, bytearray)) else len(text.encode("utf-8", "surrogatepass"))
        keeper = current_keeper()
        if keeper is not None and isinstance(text, (str, bytes)) and keeper.room:
            try:
                normalized = self._core.normalize(text, keeper.room)
            except (UnicodeEncodeError, ModelFormatError):  # lone surrogates, a runaway rule: measured below
                normalized = None
            if normalized is not None:
                keeper.keep(text, self._core, normalized, len(normalized))
                return len(normalized) + NORMALIZED_SLACK
        total = 0
        for start in range(0, max(len(text), 1), _MEASURE_SLICE_CHARS):
            part = text[start:start + _MEASURE_SLICE_CHARS]
            data = bytes(part) if isinstance(part, (bytes, bytearray)) else part.encode("utf-8", "surrogatepass")
            try:
                total += len(self._core.normalize(data)) + NORMALIZED_SLACK
            except ModelFormatError:  # past the growth the core allows: the encode refuses the text itself
                total += MAX_NORMALIZED_GROWTH * len(data) + NORMALIZED_SLACK
        return total

    def normalize(self, text: str) -> str:
        """The text BPE sees: sentencepiece's normalizer output (`▁` for spaces, dummy prefix)."""
        return self._core.normalize(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")

    def piece_cache_stats(self) -> PieceCacheStats:
        hits, misses, size, capacity = self._core.cache_stats()
        return PieceCacheStats(hits=hits, misses=misses, size=size, capacity=capacity)

    # ---- pickling ------------------------------------------------------------------------------------

    def __getstate__(self) -> dict:
        return {"name": self.name, "model": self._model, "piece_cache_capacity": self._piece_cache_capacity}

    def __setstate__(self, state: dict) -> None:
        name = state.pop("name")
        self.__init__(name, **state)

    # ---- private ------------------------------------------------------------------------------------

    def _check_specials(self, text, allowed_special, disallowed_special, item) -> frozenset[str]:
        if disallowed_special == "all" and not allowed_special and isinstance(disallowed_special, str):
            allowed, disallowed = _EMPTY, self._special_set
        else:
            allowed, disallowed = resolve_policy(
                self._special_set, allowed_special=allowed_special, disallowed_special=disallowed_special
            )
        # Each `in` is a pass over the text: a few of them (first characters, tokens) before the one regex
        # pass, and only a few — 20,000 allowed pieces tested one by one cost 2 s a 200 KB text.
        if disallowed:
            firsts = self._special_firsts if disallowed is self._special_set else {token[:1] for token in disallowed}
            if len(firsts) <= _SUBSTRING_PRECHECK_LIMIT and not any(first in text for first in firsts):
                pass
            elif len(disallowed) > _SUBSTRING_PRECHECK_LIMIT or any(token in text for token in disallowed):
                match = special_token_regex(disallowed).search(text)
                if match is not None:
                    raise DisallowedSpecialTokenError(match.group(), match.start(), item)
        if allowed:
            if len(allowed) > _SUBSTRING_PRECHECK_LIMIT:
                present = special_token_regex(allowed).search(text) is not None
            else:
                present = any(token in text for token in allowed)
            if not present:
                return _EMPTY
        return allowed

    def _check_ids(self, tokens: Sequence[int], item: int | None) -> None:
        n_vocab = len(self._model.pieces)
        try:
            if not tokens or (min(tokens) >= 0 and max(tokens) < n_vocab):
                return  # every id in range (C-speed check); a non-integer id fails later with TypeError
        except TypeError:
            pass
        for token in tokens:
            try:
                value = operator.index(token)
            except TypeError:
                raise UnknownTokenIdError(token, item, n_vocab=n_vocab) from None
            if not 0 <= value < n_vocab:
                raise UnknownTokenIdError(token, item, n_vocab=n_vocab)
