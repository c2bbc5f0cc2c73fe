"""`Encoding`: an immutable byte-level BPE tokenizer with tiktoken's API, semantics and ids.

>>> enc = Encoding("toy", pat_str=r"\\S+|\\s+", mergeable_ranks={bytes([i]): i for i in range(256)} | {b"hi": 256},
...                special_tokens={"<|end|>": 257})
>>> enc.encode("hi hix")
[256, 32, 256, 120]
>>> enc.encode("hi<|end|>", allowed_special="all"), enc.count("hi hix")
([256, 257], 4)
>>> enc.decode([256, 32, 257])
'hi <|end|>'

Every byte-level BPE family is one `ByteLevelModel` (plain data) and one Encoding: the constructor takes
tiktoken's arguments; `Encoding.from_model(model)` takes the rest (Hugging Face tokenizer.json and GGUF
models: merges by pair priority, `ignore_merges`, an NFC normalizer, Split/ByteLevel pre-tokenizers, added
tokens with their flags; Tekken: ranks shifted by its special slots):

>>> model = ByteLevelModel("toy-hf", vocabulary={bytes([i]): i for i in range(256)} | {b"hi": 256},
...                        merges=array("I", [104, 105, 256]), pre_tokenizer=(Split(r"\\S+|\\s+"),),
...                        added_tokens=(AddedToken("<think>", 257, special=False),))
>>> Encoding.from_model(model).encode("hi<think>hi")
[256, 257, 256]

The hot path (`encode_ordinary`, and `encode`/`count` between special tokens) is the native core
(`_native.BpeCore`, our own C in service/native/): it pre-splits in C (hand-written scanners for the
hottest patterns, the general matcher compiled by `tokend.engine.splitting` for any other pattern in its
subset, chains of them for Hugging Face's Sequence of Splits; each equal to its reference's matches), looks
each piece up in the vocabulary, then in a bounded piece cache, and only then runs the BPE merge (tiktoken's
rank rule, or the pair-priority rule of a merge list); `count` never builds a list. A normalizer and added
tokens are Python (`TextPipeline`) in front of the same core. Python also splits (`TextPipeline.pre_tokenize`,
the `regex` module for a pattern the compiler refuses) when a pattern is outside the compiler's subset (see
splitting.syntax) or a `PrefixSpace` step follows a `Split` (a leading one is one space before the text).
`splitter=` (ours, keyword-only) replaces findall over `pat_str` with a compiled split: a `Splitter`
(findall, e.g. in the oniguruma dialect) or a `SplitterChain` (Hugging Face's Split / Sequence of Splits,
"Isolated"); the pre-tokenizer (and `pattern`) are then the splitter's. Measured: docs/bench-engine.md.
Rejected: a pure-Python hot path (word-chunk cache, stdlib-`re` ASCII patterns, dict piece cache, heap BPE
in Python): 0.25-0.74x tiktoken on unseen text, because the `regex` pass alone runs at ~13 MB/s and a
Python merge costs ~1 us per step (docs/decisions.md).

Thread safety: an Encoding is immutable except the core's piece cache, which the core touches only with
the GIL held, so calls from several threads are safe. The core releases the GIL while it merges a long
piece and while it finds the pieces of a big text (service/native/module.c), so one big call does not stall
the other threads. `encode_batch`, `encode_ordinary_batch` and `count_batch` hand the whole batch to the
core, which encodes it on up to `num_threads` threads with the GIL released throughout (`_batch`).

Not handled: `encode_with_unstable` (tiktoken's completion helper; no caller of ours needs it).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType
from typing import AbstractSet, Literal

from ..errors import DisallowedSpecialTokenError, ModelFormatError
from ._native import BpeCore, PieceSplitter
from .added_tokens import AddedToken
from .batch_methods import BATCH_MAX_FLAGS, ByteLevelBatchMethods
from .budget_methods import BudgetMethods
from .byte_level_decoding import ByteLevelDecoding
from .byte_level_model import ByteLevelModel, Normalizer
from .call_stop import stop_if_due
from .normalized_texts import current_keeper
from .piece_cache import DEFAULT_CAPACITY, DEFAULT_MAX_PIECE_BYTES, MAX_CAPACITY, PieceCacheStats
from .pre_tokenizer import PrefixSpace, PreTokenizerStep, Split
from .special_tokens import SpecialTokenSet, is_default_policy, resolve_policy, special_token_regex, split_at_specials
from .splitting import MAX_STAGES, Splitter, SplitterChain, compile_splitter
from .splitting.nodes import Dialect
from .splitting.pattern_bounds import PatternTooComplex
from .surrogates import fix_surrogates
from .text_pipeline import TextPipeline, normalize
from .vocabulary_checks import check_model

__all__ = ["Encoding"]

_EMPTY: frozenset[str] = frozenset()
# Below this many disallowed strings, `token in text` scans (C, memchr-fast) beat one regex search.
_SUBSTRING_PRECHECK_LIMIT = 16
# Seeds the core's hash tables, per process, so no input can be precomputed to make lookups collide.
_HASH_SEED = int.from_bytes(os.urandom(8), "little")
# NFC makes a text at most this many times longer in UTF-8: U+1D160 (4 bytes) becomes three characters of 4 bytes.
NFC_GROWTH = 3
# Characters normalized per step when `working_text_bytes` measures a text (its output is dropped after each).
_MEASURE_SLICE_CHARS = 65_536
# Pieces of raw bytes that are not UTF-8 (`encode_bytes`) encoded between two looks at the call's stop: 8-22 ms of
# the slowest (pieces of 129-511 bytes), nothing to measure for short ones.
_PIECES_BETWEEN_STOPS = 1024


def _not_special(token: AddedToken) -> bool:
    return not token.special


def _with_prefix_space(segment: str) -> str:
    # a leading PrefixSpace step: the segment is its only piece then
    return segment if not segment or segment.startswith(" ") else " " + segment


def _native_split(steps: tuple[PreTokenizerStep, ...], dialect: Dialect) -> tuple[PieceSplitter | None, bool]:
    """The splitter the native core runs for `steps`, and whether a space goes before each segment first
    (leading `PrefixSpace` steps); (None, False) when Python splits (`TextPipeline.pre_tokenize`): no Split
    step, a `PrefixSpace` after a Split, more than MAX_STAGES Splits, or a pattern the compiler refuses.
    The one place where pre-tokenizer steps become the core's splitter."""
    index = 0
    while index < len(steps) and isinstance(steps[index], PrefixSpace):
        index += 1
    splits = steps[index:]
    if not splits or len(splits) > MAX_STAGES or not all(isinstance(step, Split) for step in splits):
        return None, False
    try:
        stages = [compile_splitter(step.pattern, dialect=dialect).native_stage("isolated" if step.keep_gaps else "findall")
                  for step in splits]
    except PatternTooComplex:
        raise
    except ModelFormatError:  # outside the compiler's subset: the regex module splits
        return None, False
    return PieceSplitter(stages), index > 0


# A str subclass's characters as a str (a copy): the special-token searches below use str's methods, which
# a subclass may override (one whose __contains__ found nothing took a disallowed token for text); tiktoken,
# and the core, read the characters. Only texts that leave the core's one-call path pay the type test.
_exact_str = str.__str__


class Encoding(ByteLevelBatchMethods, ByteLevelDecoding, BudgetMethods):
    """Byte-level BPE with regex pre-splitting and special tokens; same constructor as `tiktoken.Encoding`.

    `piece_cache_capacity` (keyword-only, ours) bounds the piece cache (entries per generation; 0 disables
    it). Memory bound: see piece_cache. `splitter` (keyword-only, ours): see the module docstring. Other
    families: `Encoding.from_model(ByteLevelModel(...))`. Offsets, truncate, chunk and decoder: budget_methods.
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
        if splitter is None:
            steps, dialect = (Split(pat_str, keep_gaps=False),), "python-regex"
        elif isinstance(splitter, Splitter):
            steps, dialect = (Split(splitter.pattern, keep_gaps=False),), splitter.dialect
        elif isinstance(splitter, SplitterChain):
            keep_gaps = splitter.mode == "isolated"
            steps = tuple(Split(stage.pattern, keep_gaps=keep_gaps) for stage in splitter.splitters)
            dialect = splitter.splitters[0].dialect
        else:
            raise TypeError(f"splitter must be a Splitter or SplitterChain, got {type(splitter).__name__}")
        model = ByteLevelModel(
            name,
            vocabulary=dict(mergeable_ranks),
            pre_tokenizer=steps,
            special_tokens=dict(special_tokens),
            explicit_n_vocab=explicit_n_vocab,
            dialect=dialect,
        )
        self._build(model, piece_cache_capacity, splitter)

    @classmethod
    def from_model(cls, model: ByteLevelModel, *, piece_cache_capacity: int = DEFAULT_CAPACITY) -> Encoding:
        """The Encoding of any byte-level BPE family (see `ByteLevelModel`; the format readers make one).

        >>> model = ByteLevelModel("toy", vocabulary={bytes([i]): i for i in range(256)} | {b"hi": 256},
        ...                        merges=array("I", [104, 105, 256]), pre_tokenizer=(Split(r"\\S+|\\s+"),))
        >>> Encoding.from_model(model).encode("hi hi")
        [256, 32, 256]
        """
        encoding = cls.__new__(cls)
        encoding._build(model, piece_cache_capacity)
        return encoding

    def _build(self, model: ByteLevelModel, piece_cache_capacity: int,
               splitter: Splitter | SplitterChain | None = None) -> None:
        name = model.name
        self.name = name
        self._model = model
        self._pat_str = next((step.pattern for step in model.pre_tokenizer if isinstance(step, Split)), "")
        # bytes -> id (the rank, under tiktoken's rule); used as given, never changed (as tiktoken does)
        ranks = model.vocabulary if type(model.vocabulary) is dict else dict(model.vocabulary)
        check_model(model, ranks)
        self._ranks = ranks
        added = model.added_tokens
        # str -> id: tiktoken-style special tokens, or the added tokens marked special
        specials = dict(model.special_tokens) or {token.content: token.id for token in added if token.special}
        self._special_tokens = specials
        self._added_by_content = {token.content: token.id for token in added}  # str -> id
        self._special_set = frozenset(specials)
        self._special_ids = frozenset(specials.values())
        self._specials = SpecialTokenSet(self._special_set)
        self.max_token_value = max(
            max(ranks.values()), max(specials.values(), default=0), max(model.extra_decoder, default=0),
            max((token.id for token in added), default=0),
        )  # fmt: skip
        if not 0 <= piece_cache_capacity <= MAX_CAPACITY:
            raise ValueError(f"piece_cache_capacity must be in 0..{MAX_CAPACITY}, got {piece_cache_capacity}")
        self._piece_cache_capacity = piece_cache_capacity
        steps = model.pre_tokenizer
        self._explicit_splitter = splitter  # as given to the constructor (kept for pickling), or None
        if isinstance(splitter, Splitter):
            native_splitter, self._prefix_space = splitter.native_splitter("findall"), False
        elif isinstance(splitter, SplitterChain):
            native_splitter, self._prefix_space = splitter.native_splitter(), False
        else:
            native_splitter, self._prefix_space = _native_split(steps, model.dialect)
        self._native_splitter = native_splitter  # None: Python splits (TextPipeline.pre_tokenize)
        try:
            self._pipeline = TextPipeline(
                pre_tokenizer=steps, normalizer=model.normalizer, added_tokens=added, dialect=model.dialect
            )
            if native_splitter is None:
                self._pipeline.pre_tokenize  # compiled now: a pattern that does not compile fails here
            self._core = BpeCore(
                ranks,
                native_splitter,
                cache_capacity=piece_cache_capacity,
                max_cached_piece_bytes=DEFAULT_MAX_PIECE_BYTES,
                hash_seed=_HASH_SEED,
                merges=model.merges,
                ignore_merges=model.ignore_merges,
            )
        except (TypeError, ValueError) as exc:  # e.g. a rank beyond 32 bits
            raise ModelFormatError(f"encoding {name!r}: {exc}") from None
        # Hugging Face-style added tokens are looked for in all text (the non-special ones always count).
        self._uses_pipeline = bool(added)
        # Every added token special and matched in the raw text (Llama 3's): under the default policy,
        # `_check_specials` returning means no special token is in the text, so no added token is either,
        # and encode/count skip looking for them a second time.
        self._added_are_raw_specials = bool(added) and all(token.special and not token.normalized for token in added)
        # Under the default policy, a text without any special token's prefix goes straight to the core when
        # it would anyway (no added tokens, or only raw special ones): encode/count skip the general path's
        # calls (~1 us, 3-6 % of a count of a few KB; docs/decisions.md, "The special-token pre-check in C").
        self._default_goes_to_core = not self._uses_pipeline or self._added_are_raw_specials
        self._special_prefix_found = self._specials.prefix_found
        # Every special token a raw added token (Qwen's: special ones beside plain ones like "<think>"): under
        # the default policy a text without any added token holds no special token either, so one scan for
        # the added tokens (TextPipeline.may_hold_added_tokens) answers both questions and encode/count go on
        # without `_check_specials`' own (docs/decisions.md, "Added tokens looked for whole").
        raw_added = {token.content for token in added if not token.normalized}
        self._added_scan_covers_specials = (self._uses_pipeline and not self._added_are_raw_specials
                                            and self._special_set <= raw_added)  # fmt: skip
        # count_batch under the default policy lets the core's workers look for the special tokens' prefixes
        # (`_count_batch_default_policy`): for a model whose texts go to the core as they are, and at most
        # the core's number of non-empty prefixes (batch_encode.h, TK_BATCH_MAX_NEEDLES).
        prefixes = self._specials.prefixes
        self._batch_flags_specials = (
            native_splitter is not None and not self._uses_pipeline and model.normalizer is None
            and not self._prefix_space and len(prefixes) <= BATCH_MAX_FLAGS and "" not in prefixes
        )  # fmt: skip
        # Under the default policy, the same models' encode/count ask the core in one call, which looks for the
        # prefixes in the UTF-8 it then encodes (None: one occurs, or the text needs the general path). Saves
        # the pre-check's pass over the str and three Python calls: 3-5 % of a first `count` of a few KB
        # (docs/decisions.md, "The default policy's pre-check in the core's call").
        self._default_prefixes = prefixes
        self._core_count_unless = self._core.count_unless if self._batch_flags_specials else None
        self._core_encode_unless = self._core.encode_unless if self._batch_flags_specials else None
        # The same under the default policy for a model whose special tokens are all raw added tokens (Qwen's):
        # text -> ids / count when no added token can be in it, else None (the general way).
        self._encode_unless_added = self._count_unless_added = None
        # A segment is text without added tokens, normalized: the core splits it, or Python does.
        if native_splitter is not None:
            encode, count, split = self._core.encode, self._core.count, self._core.split
            if self._prefix_space:
                self._segment_ids = lambda segment: encode(_with_prefix_space(segment))
                self._segment_count = lambda segment: count(_with_prefix_space(segment))
                self._split = lambda segment: split(_with_prefix_space(segment))
            else:
                self._segment_ids, self._segment_count, self._split = encode, count, split
        else:
            encode_pieces, count_pieces, pieces = self._core.encode_pieces, self._core.count_pieces, self._pipeline.pre_tokenize
            self._segment_ids = lambda segment: encode_pieces(pieces(segment))
            self._segment_count = lambda segment: count_pieces(pieces(segment))
            self._split = pieces
        if model.normalizer is None:
            self._encode_text, self._count_text = self._segment_ids, self._segment_count
        else:
            normalizer, segment_ids, segment_count = model.normalizer, self._segment_ids, self._segment_count
            self._encode_text = lambda text: segment_ids(normalize(normalizer, text))
            self._count_text = lambda text: segment_count(normalize(normalizer, text))
        if self._added_scan_covers_specials:
            self._encode_unless_added = self._pipeline.unless_added_tokens(self._segment_ids)
            self._count_unless_added = self._pipeline.unless_added_tokens(self._segment_count)

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    # ---- encoding ---------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of `text`, treating special-token text as plain text (non-special added tokens still count).

        >>> from tokend import get_encoding
        >>> get_encoding("cl100k_base").encode_ordinary("hello <|endoftext|>")
        [15339, 83739, 8862, 728, 428, 91, 29]
        """
        if self._uses_pipeline:
            return self._encode_items(text, _EMPTY)
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
        """Ids of `text`; special tokens per tiktoken's rules (see `special_tokens`).

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> enc.encode("<|endoftext|>", allowed_special={"<|endoftext|>"})
        [100257]
        >>> enc.encode("<|endoftext|>")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        tokend.errors.DisallowedSpecialTokenError: Encountered text corresponding to disallowed special token ...
        """
        # is_default_policy(allowed_special, disallowed_special), spelled out: a call is ~2 % of a short text's encode
        if not allowed_special and disallowed_special == "all" and isinstance(disallowed_special, str):
            if self._core_encode_unless is not None:
                ids = self._core_encode_unless(text, self._default_prefixes)
                if ids is not None:
                    return ids
            if self._encode_unless_added is not None:
                ids = self._encode_unless_added(text)
                if ids is not None:
                    return ids
        if type(text) is not str and isinstance(text, str):
            text = _exact_str(text)
        if (self._default_goes_to_core and is_default_policy(allowed_special, disallowed_special)
                and not self._special_prefix_found(text)):
            return self._encode_without_added_tokens(text)
        if self._added_scan_covers_specials and is_default_policy(allowed_special, disallowed_special):
            return self._encode_items(text, _EMPTY, check_specials=True)
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if self._uses_pipeline:
            if self._added_are_raw_specials and is_default_policy(allowed_special, disallowed_special):
                return self._encode_without_added_tokens(text)
            return self._encode_items(text, allowed)
        if not allowed:
            return self.encode_ordinary(text)
        ids: list[int] = []
        for ordinary, special in split_at_specials(text, allowed):
            ids += self.encode_ordinary(ordinary)
            if special is not None:
                ids.append(self._special_tokens[special])
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

        >>> from tokend import get_encoding
        >>> get_encoding("cl100k_base").encode_to_numpy("hello world")
        array([15339,  1917], dtype=uint32)
        """
        import numpy

        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if allowed or self._encode_text != self._core.encode or self._uses_pipeline:
            return numpy.array(self.encode(text, allowed_special=allowed, disallowed_special=()), dtype=numpy.uint32)
        try:
            buffer = self._core.encode_buffer(text)
        except UnicodeEncodeError:
            buffer = self._core.encode_buffer(fix_surrogates(text))
        return numpy.frombuffer(buffer, dtype=numpy.uint32)

    def encode_to_buffer(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> Sequence[int]:
        """`encode`, as a read-only ``memoryview`` of native uint32 ids where the native core can hand its
        buffer over (text without allowed special tokens, no pipeline), else the list `encode` gives.

        For callers that write the ids out in bulk (the gRPC server's Encode answer): no Python int is
        made per id, and the GIL is held only to copy the buffer once, not for a list of millions of items
        (nor, later, to free one).

        >>> from tokend import get_encoding
        >>> ids = get_encoding("cl100k_base").encode_to_buffer("hello world")
        >>> ids.format, list(ids)
        ('I', [15339, 1917])
        """
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if allowed or self._encode_text != self._core.encode or self._uses_pipeline:
            return self.encode(text, allowed_special=allowed, disallowed_special=())
        try:
            buffer = self._core.encode_buffer(text)
        except UnicodeEncodeError:
            buffer = self._core.encode_buffer(fix_surrogates(text))
        return memoryview(buffer).cast("I")

    def encode_bytes(self, data: bytes) -> list[int]:
        """Ids for arbitrary bytes (need not be UTF-8); identical to tiktoken's `_encode_bytes`.

        The valid UTF-8 prefix is encoded as text; the rest, together with the last piece of that prefix
        (extended over trailing whitespace tokens), is encoded as a single piece. (Added tokens of the
        prefix stay tokens.)

        >>> from tokend import get_encoding
        >>> enc = get_encoding("cl100k_base")
        >>> enc.decode_bytes(enc.encode_bytes(b"caf\\xc3"))
        b'caf\\xc3'
        """
        data = bytes(data)
        try:
            return self.encode_ordinary(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            valid_up_to = exc.start
        prefix = data[:valid_up_to].decode("utf-8")
        ids: list[int] = []
        if self._uses_pipeline:
            items = self._items(prefix, _EMPTY)
            pieces = self._split(items.pop()) if items and isinstance(items[-1], str) else []
            ids = self._items_to_ids(items)
        else:
            pieces = self._split(normalize(self._model.normalizer, prefix))
        # The pieces a slice at a time, the call's stop looked at between them (this path holds the GIL and is not
        # the unlocked text's, which looks at it itself): 8 MB of 301-byte pieces was ~0.3 s whatever the deadline.
        for first in range(0, len(pieces) - 1, _PIECES_BETWEEN_STOPS):
            if first:
                stop_if_due()
            ids += self._core.encode_pieces(pieces[first:min(first + _PIECES_BETWEEN_STOPS, len(pieces) - 1)])
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
        """The id of a single token given as text or bytes (special and added tokens included); KeyError otherwise."""
        token = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else bytes(text_or_bytes)
        rank = self._ranks.get(token)
        if rank is not None:
            return rank
        try:
            text = token.decode("utf-8")
        except UnicodeDecodeError:
            raise KeyError(text_or_bytes) from None
        token_id = self._special_tokens.get(text, self._added_by_content.get(text))
        if token_id is None:
            raise KeyError(text_or_bytes)
        return token_id

    # ---- counting (ours) ----------------------------------------------------------------------------

    def count_ordinary(self, text: str) -> int:
        """`len(encode_ordinary(text))` without building the list."""
        if self._uses_pipeline:
            return self._count_items(text, _EMPTY)
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
        # as in encode
        if not allowed_special and disallowed_special == "all" and isinstance(disallowed_special, str):
            if self._core_count_unless is not None:
                count = self._core_count_unless(text, self._default_prefixes)
                if count is not None:
                    return count
            if self._count_unless_added is not None:
                count = self._count_unless_added(text)
                if count is not None:
                    return count
        if type(text) is not str and isinstance(text, str):
            text = _exact_str(text)
        if (self._default_goes_to_core and is_default_policy(allowed_special, disallowed_special)
                and not self._special_prefix_found(text)):
            return self._count_without_added_tokens(text)
        if self._added_scan_covers_specials and is_default_policy(allowed_special, disallowed_special):
            return self._count_items(text, _EMPTY, check_specials=True)
        allowed = self._check_specials(text, allowed_special, disallowed_special, None)
        if self._uses_pipeline:
            if self._added_are_raw_specials and is_default_policy(allowed_special, disallowed_special):
                return self._count_without_added_tokens(text)
            return self._count_items(text, allowed)
        if not allowed:
            return self.count_ordinary(text)
        pieces = split_at_specials(text, allowed)
        return sum(self.count_ordinary(ordinary) + (special is not None) for ordinary, special in pieces)

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
        """The split regex (of the first Split step, for a pre-tokenizer of several; see `pre_tokenizer`)."""
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

    @property
    def added_tokens(self) -> tuple[AddedToken, ...]:
        """Hugging Face-style added tokens with their flags (the special ones are also `special_tokens`)."""
        return self._model.added_tokens

    @property
    def normalizer(self) -> Normalizer | None:
        return self._model.normalizer

    # A byte-level model merges each piece on its own, so its working state follows the longest piece, not the
    # whole text (a chat template's rendered text: service/chat.py, ``rendered_text_bytes``).
    whole_text_working_state = False

    def working_text_bound(self, size: int) -> int:
        """What `working_text_bytes` may be at most for an input of `size` bytes, without looking at it."""
        return size if self._model.normalizer is None else NFC_GROWTH * size

    def working_text_bytes(self, text: str | bytes) -> int:
        """The UTF-8 bytes of `text` once normalized: what the merge's working memory (~20 bytes a byte of the
        longest piece) follows. NFC may triple a text (a run of U+1D160: one piece, three times as long). Inside a
        ``keeping_normalized`` scope a text whose tripled size fits the scope's room is normalized whole and kept
        there, so its encode in the scope does not normalize it again (normalized_texts.py); otherwise measured
        65,536 characters at a time, so no more than one slice's output is held. Raw bytes are measured as
        `encode_bytes` works on them: their valid UTF-8 prefix normalized, the rest as it is (one raw piece).

        >>> from tokend import get_encoding
        >>> get_encoding("cl100k_base").working_text_bytes("h\u00e9llo"), get_encoding("cl100k_base").working_text_bound(6)
        (6, 6)
        """
        if isinstance(text, (bytes, bytearray)):
            data = bytes(text)
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:  # no normalizer sees the rest (a U+FFFD each counted it 3 times)
                return self.working_text_bytes(data[: exc.start].decode("utf-8")) + len(data) - exc.start
        normalizer = self._model.normalizer
        if normalizer is None or text.isascii():  # NFC changes no ASCII text
            return len(text.encode("utf-8", "surrogatepass"))
        keeper = current_keeper()
        # (4 bytes a character at most: the text's UTF-8 is made only when that bound does not fit)
        if keeper is not None and (NFC_GROWTH * 4 * len(text) <= keeper.room
                                   or NFC_GROWTH * len(text.encode("utf-8", "surrogatepass")) <= keeper.room):
            # normalized whole, as the encode will: kept for it (normalized_texts.py), not normalized again
            normalized = normalize(normalizer, text)
            size = len(normalized.encode("utf-8", "surrogatepass"))
            keeper.keep(text, normalizer, normalized, size)
            return size
        return sum(len(normalize(normalizer, text[start:start + _MEASURE_SLICE_CHARS]).encode("utf-8", "surrogatepass"))
                   for start in range(0, len(text), _MEASURE_SLICE_CHARS))

    @property
    def pre_tokenizer(self) -> tuple[PreTokenizerStep, ...]:
        return self._model.pre_tokenizer

    @property
    def merge_rule(self) -> Literal["rank", "pairs"]:
        """"rank": tiktoken's (lowest id of the concatenation); "pairs": the merge list's priority."""
        return self._model.merge_rule

    @property
    def model(self) -> ByteLevelModel:
        """The plain data this Encoding was built from."""
        return self._model

    def piece_cache_stats(self) -> PieceCacheStats:
        """Hits, misses, learned entries and capacity of the piece cache (for metrics)."""
        hits, misses, size, capacity = self._core.cache_stats()
        return PieceCacheStats(hits=hits, misses=misses, size=size, capacity=capacity)

    # ---- pickling: rebuild from plain data (the cache is not state) --------------------------------

    def __getstate__(self) -> dict:
        return {"model": self._model, "piece_cache_capacity": self._piece_cache_capacity,
                "splitter": self._explicit_splitter}

    def __setstate__(self, state: dict) -> None:
        self._build(state["model"], state["piece_cache_capacity"], state.get("splitter"))

    # ---- private ------------------------------------------------------------------------------------

    def _check_specials(self, text, allowed_special, disallowed_special, item) -> frozenset[str]:
        """Raise for a disallowed string in `text`; return the allowed special tokens that occur in it."""
        if type(text) is not str and isinstance(text, str):
            text = _exact_str(text)
        if is_default_policy(allowed_special, disallowed_special):
            # the default policy, without set arithmetic
            if not self._specials.may_occur(text):
                return _EMPTY
            allowed, disallowed = _EMPTY, self._special_set
        else:
            allowed, disallowed = resolve_policy(
                self._special_set, allowed_special=allowed_special, disallowed_special=disallowed_special
            )
        if disallowed and self._may_contain(text, disallowed):
            match = special_token_regex(disallowed).search(text)
            if match is not None:
                raise DisallowedSpecialTokenError(match.group(), match.start(), item)
        if allowed and not self._may_contain(text, allowed):
            return _EMPTY
        return allowed

    def _may_contain(self, text: str, tokens: frozenset[str]) -> bool:
        """False when none of `tokens` occurs in `text` (True: maybe)."""
        if tokens == self._special_set:
            return self._specials.may_occur(text)
        return len(tokens) > _SUBSTRING_PRECHECK_LIMIT or any(token in text for token in tokens)

    def _is_all_space(self, token: int) -> bool:
        token_bytes = self._decoder.get(token)
        return token_bytes is not None and all(byte in b" \n\t" for byte in token_bytes)

    # Hugging Face-style models: added tokens, normalizer and pre-tokenizer in TextPipeline, BPE in the core.

    def _encode_without_added_tokens(self, text: str) -> list[int]:
        try:
            return self._encode_text(text)
        except UnicodeEncodeError:
            return self._encode_text(fix_surrogates(text))

    def _count_without_added_tokens(self, text: str) -> int:
        try:
            return self._count_text(text)
        except UnicodeEncodeError:
            return self._count_text(fix_surrogates(text))

    def _items(self, text: str, allowed: frozenset[str]) -> list:
        active = _not_special if not allowed else (lambda token: not token.special or token.content in allowed)
        return self._pipeline.items(text, active=active)

    def _items_to_ids(self, items: list) -> list[int]:
        ids: list[int] = []
        segment_ids = self._segment_ids
        for item in items:
            if isinstance(item, int):
                ids.append(item)
            else:
                ids += segment_ids(item)
        return ids

    def _encode_items(self, text: str, allowed: frozenset[str], *, check_specials: bool = False) -> list[int]:
        """Ids of `text` through the pipeline, `allowed` the special tokens `_check_specials` let through.
        `check_specials`: that check is still to be made, under the default policy (`allowed` empty), and only
        for a text that holds an added token (`_added_scan_covers_specials`)."""
        try:
            if not self._pipeline.may_hold_added_tokens(text):
                return self._encode_text(text)
            if check_specials:
                allowed = self._check_specials(text, _EMPTY, "all", None)
            return self._items_to_ids(self._items(text, allowed))
        except UnicodeEncodeError:  # specials checked on the text as given (repairing may join a pair into one)
            if check_specials:
                allowed = self._check_specials(text, _EMPTY, "all", None)
            return self._encode_items(fix_surrogates(text), allowed)

    def _core_items(self, text: str, allowed: frozenset[str]) -> list[str | int]:
        """`text` as the core takes it: segments it encodes as they are (normalized, with the prefix space)
        and, between them, the ids of the special or added tokens found (what `encode` does, in pieces)."""
        normalizer = self._model.normalizer
        if self._uses_pipeline:
            items = (self._items(text, allowed) if self._pipeline.may_hold_added_tokens(text)
                     else [normalize(normalizer, text)])
        elif allowed:
            items = []
            for ordinary, special in split_at_specials(text, allowed):
                items.append(normalize(normalizer, ordinary))
                if special is not None:
                    items.append(self._special_tokens[special])
        else:
            items = [normalize(normalizer, text)]
        if self._prefix_space:
            items = [_with_prefix_space(item) if type(item) is str else item for item in items]
        return items

    def _count_items(self, text: str, allowed: frozenset[str], *, check_specials: bool = False) -> int:
        """`len(_encode_items(text, allowed, check_specials=check_specials))`."""
        try:
            if not self._pipeline.may_hold_added_tokens(text):
                return self._count_text(text)
            if check_specials:
                allowed = self._check_specials(text, _EMPTY, "all", None)
            segment_count = self._segment_count
            return sum(1 if isinstance(item, int) else segment_count(item) for item in self._items(text, allowed))
        except UnicodeEncodeError:  # specials checked on the text as given (repairing may join a pair into one)
            if check_specials:
                allowed = self._check_specials(text, _EMPTY, "all", None)
            return self._count_items(fix_surrogates(text), allowed)
