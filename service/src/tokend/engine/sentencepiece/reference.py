"""The SentencePiece BPE encoder in plain Python: the readable reference the native core is held to.

    >>> from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel
    >>> model = SentencePieceModel(  # a toy vocabulary: ids 0-2 special, then pieces with their merge scores
    ...     pieces=("<unk>", "<s>", "</s>", "\u2581", "h", "i", "\u2581h", "\u2581hi", "!"),
    ...     scores=(0, 0, 0, -5, -6, -7, -2, -1, -8),
    ...     types=(PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL) + (PieceType.NORMAL,) * 6,
    ...     normalizer=NormalizerSpec(name="identity", remove_extra_whitespaces=False))
    >>> ReferenceEncoder(model).encode("hi hi!")    # what the native core gives (SentencePieceEncoding)
    [7, 7, 8]

`encode(text)` = normalize (normalizer.py), then `bpe_model.cc`'s `SampleEncode` without dropout, then
sentencepiece_processor.cc's `PopulateSentencePieceText` turned into ids:

1. The normalized bytes are cut into symbols: at each position the longest user-defined piece (a *frozen*
   symbol, never merged), else one UTF-8 character.
2. Every adjacent pair whose concatenation is a piece (NORMAL, USER_DEFINED or UNUSED; never CONTROL,
   UNKNOWN or BYTE) is a candidate, scored by that piece's score. Repeatedly the candidate with the highest
   score is merged, the leftmost one on ties (sentencepiece's agenda orders by score, then by the smaller
   left index); the pairs it forms with its neighbours become candidates. Scores are ordered as sentencepiece
   0.2.3 orders them: by their 32-bit patterns read as integers, i.e. as floats but with -0.0 below +0.0.
3. A final symbol that is an UNUSED piece is split again into the two symbols that formed it, recursively
   (at most 100 levels deep); one that cannot be split (a single character) counts as unknown.
   Quirk kept: sentencepiece remembers, per UNUSED piece, the *last* pair that was pushed as a candidate
   for it anywhere in the sentence (even one that was never merged), and splits every occurrence that way.
4. A symbol that is not a piece (a character outside the vocabulary) becomes its UTF-8 bytes as `<0xNN>`
   pieces with byte fallback, else `<unk>`; consecutive `<unk>` become one.

The whole normalized sentence is one BPE problem here (as in sentencepiece); the native core splits it at
boundaries no piece can span, which gives the same ids (see sp_module.c), except for models with UNUSED
pieces, which it merges whole as well. This module is slow (a heap operation per merge in Python): tests use it.
"""

from __future__ import annotations

import heapq
import struct

from .model_file import PieceType, SentencePieceModel, byte_piece
from .normalizer import Normalizer, UserDefinedMatcher, utf8_char_length

__all__ = ["ReferenceEncoder", "MERGEABLE_TYPES"]

# Piece types that BPE may produce from text (sentencepiece's `pieces_`); the rest are reserved.
MERGEABLE_TYPES = frozenset({PieceType.NORMAL, PieceType.USER_DEFINED, PieceType.UNUSED})


class ReferenceEncoder:
    """normalize + BPE + byte fallback, in Python, exactly as sentencepiece (see module docstring)."""

    def __init__(self, model: SentencePieceModel) -> None:
        self.model = model
        user_defined = [p for p, t in zip(model.pieces, model.types) if t == PieceType.USER_DEFINED]
        self.normalizer = Normalizer(
            model.normalizer, treat_whitespace_as_suffix=model.treat_whitespace_as_suffix, user_defined=user_defined
        )
        self._matcher = UserDefinedMatcher(user_defined)
        # piece bytes -> id, for the pieces BPE can produce
        self._pieces = {
            piece.encode("utf-8"): index
            for index, (piece, piece_type) in enumerate(zip(model.pieces, model.types))
            if piece_type in MERGEABLE_TYPES
        }
        self._score_keys = [_score_key(score) for score in model.scores]
        self._scores = model.scores
        self._unused = {index for index, piece_type in enumerate(model.types) if piece_type == PieceType.UNUSED}
        self._unk_id = model.types.index(PieceType.UNKNOWN)
        # byte -> id of its <0xNN> piece
        self._byte_ids = [model.piece_id(byte_piece(b)) for b in range(256)] if model.byte_fallback else None
        self._segment = self.bpe if model.model_type == "bpe" else self.viterbi
        self._user_defined_ids = {i for i, t in enumerate(model.types) if t == PieceType.USER_DEFINED}
        self._max_piece_bytes = max(map(len, self._pieces), default=1)
        normal_scores = [score for score, t in zip(model.scores, model.types) if t == PieceType.NORMAL]
        self._unk_score = _f32(min(normal_scores, default=_FLT_MAX) - _UNK_PENALTY)

    def encode(self, text: str) -> list[int]:
        return self.encode_normalized(self.normalizer.normalize(text.encode("utf-8")))

    def encode_bytes(self, data: bytes) -> list[int]:
        return self.encode_normalized(self.normalizer.normalize(bytes(data)))

    def encode_normalized(self, normalized: bytes) -> list[int]:
        ids: list[int] = []
        previous_unknown = False
        for piece, piece_id in self._segment(normalized):
            if piece_id is not None:
                ids.append(piece_id)
                previous_unknown = False
            elif self._byte_ids is not None:
                ids.extend(self._byte_ids[byte] for byte in piece)
            elif not previous_unknown:
                ids.append(self._unk_id)
                previous_unknown = True
        return ids

    def viterbi(self, normalized: bytes) -> list[tuple[bytes, int | None]]:
        """unigram_model.cc's EncodeOptimized (sentencepiece 0.2.3): the best-scoring segmentation (Unigram).

        To the letter, in 32-bit float arithmetic: for each character start, every piece that starts there
        (shortest first) offers `best[start] + score` for the position where it ends, and replaces the best
        path ending there only if strictly higher; a user-defined piece scores 0.1 * (bytes - 1), UNUSED pieces
        are skipped, and when no piece covers exactly the one character an unknown node scores
        min(normal scores) - 10. When the running score passes +-100,000 it is re-based to 0 (sentencepiece's
        kScoreResetThreshold, which changes later roundings, so it is kept too).
        """
        size = len(normalized)
        if not size:
            return []
        best = [0.0] * (size + 1)  # float32 values
        starts = [-1] * (size + 1)
        ids: list[int | None] = [None] * (size + 1)
        max_frontier = 0
        start = 0
        while start < size:
            till_here = best[start]
            if not -_SCORE_RESET <= till_here <= _SCORE_RESET:
                offset = till_here
                for index in range(start, max_frontier + 1):
                    if index == start or starts[index] != -1:
                        best[index] = _f32(best[index] - offset)
                till_here = 0.0
            has_single_node = False
            char_length = min(utf8_char_length(normalized[start]), size - start)
            for end in range(start + 1, min(size, start + self._max_piece_bytes) + 1):
                piece_id = self._pieces.get(normalized[start:end])
                if piece_id is None or piece_id in self._unused:
                    continue
                max_frontier = max(max_frontier, end)
                length = end - start
                score = _f32(0.1 * (length - 1)) if piece_id in self._user_defined_ids else self._scores[piece_id]
                candidate = _f32(score + till_here)
                if starts[end] == -1 or candidate > best[end]:
                    best[end], starts[end], ids[end] = candidate, start, piece_id
                if length == char_length:
                    has_single_node = True
            if not has_single_node:
                end = start + char_length
                max_frontier = max(max_frontier, end)
                candidate = _f32(self._unk_score + till_here)
                if starts[end] == -1 or candidate > best[end]:
                    best[end], starts[end], ids[end] = candidate, start, None
            start += char_length
        result: list[tuple[bytes, int | None]] = []
        end = size
        while end > 0:
            result.append((normalized[starts[end] : end], ids[end]))
            end = starts[end]
        result.reverse()
        return result

    def bpe(self, normalized: bytes) -> list[tuple[bytes, int | None]]:
        """The final symbols of `normalized` with their ids (None: not a piece), after UNUSED re-splitting."""
        symbols: list[bytes] = []  # the text of each symbol; b"" once merged into its left neighbour
        frozen: list[bool] = []
        pos = 0
        while pos < len(normalized):
            length = self._matcher.match(normalized, pos) if self._matcher else 0
            frozen.append(bool(length))
            length = length or min(utf8_char_length(normalized[pos]), len(normalized) - pos)
            symbols.append(normalized[pos : pos + length])
            pos += length
        count = len(symbols)
        next_ = list(range(1, count)) + [-1]
        prev = list(range(-1, count - 1))
        agenda: list[tuple[float, int, int, int]] = []  # (-score, left, right, size) as a min-heap
        rev_merge: dict[bytes, tuple[bytes, bytes]] = {}

        def add_pair(left: int, right: int) -> None:
            if left == -1 or right == -1 or frozen[left] or frozen[right]:
                return
            piece = symbols[left] + symbols[right]
            piece_id = self._pieces.get(piece)
            if piece_id is None:
                return
            heapq.heappush(agenda, (-self._score_keys[piece_id], left, right, len(piece)))
            if piece_id in self._unused:
                rev_merge[piece] = (symbols[left], symbols[right])

        for index in range(1, count):
            add_pair(index - 1, index)
        while agenda:
            _, left, right, size = heapq.heappop(agenda)
            if not symbols[left] or not symbols[right] or len(symbols[left]) + len(symbols[right]) != size:
                continue  # stale: one side has changed since the pair was pushed
            symbols[left] += symbols[right]
            symbols[right] = b""
            next_[left] = next_[right]
            if next_[right] >= 0:
                prev[next_[right]] = left
            add_pair(prev[left], left)
            add_pair(left, next_[left])

        result: list[tuple[bytes, int | None]] = []

        def resegment(piece: bytes, depth: int) -> None:
            piece_id = self._pieces.get(piece)
            if depth > _MAX_RESEGMENT_DEPTH or piece_id not in self._unused:
                result.append((piece, piece_id))
            elif piece in rev_merge:
                left, right = rev_merge[piece]
                resegment(left, depth + 1)
                resegment(right, depth + 1)
            else:
                result.append((piece, None))  # an UNUSED character: unknown

        index = 0 if count else -1
        while index != -1:
            resegment(symbols[index], 0)
            index = next_[index]
        return result


_MAX_RESEGMENT_DEPTH = 100  # sentencepiece's kMaxBpeResegmentDepth
_FLT_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
_UNK_PENALTY = 10.0  # unigram_model.cc's kUnkPenalty
_SCORE_RESET = 100_000.0  # unigram_model.cc's kScoreResetThreshold


def _f32(value: float) -> float:
    """`value` rounded to a 32-bit float (a C++ `float` result; double rounding is harmless for + and -)."""
    return struct.unpack("<f", struct.pack("<f", value))[0]


def _score_key(score: float) -> int:
    """An integer in sentencepiece 0.2.3's score order (its comparator reads the float's bits as an int32)."""
    (bits,) = struct.unpack("<I", struct.pack("<f", score))
    return (~bits & 0xFFFFFFFF) if bits & 0x80000000 else bits | 0x80000000
