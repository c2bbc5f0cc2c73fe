"""The bucket merge's first round, scattered by rows (native/bpe_bucket_merge.c, scatter_by_rows), against tiktoken.

A huge piece's byte pairs are grouped by pair before the merges of each rank: in one pass straight to each pair's
place, or, for a piece of _native.ROWS_PIECE bytes or more with many distinct pairs (TK_PREFETCH_PAIRS: 256) whose
rows of one first byte are none over an eighth of the piece (TK_ROW_SHARE), by first byte and then by second. The
two must give every pair its offsets in ascending order, or a rank merges a later pair before an earlier one and
the ids differ. The pieces here sit on both sides of each condition: 15, 16 and 17 symbols (225, 256, 289 pairs),
one byte taking 10 %, 13 % and half of the piece among 200 others, every byte value (rows 0 and 255, second byte
0xFF), one byte short of ROWS_PIECE and at it, and at the bucket merge's shortest piece (one pass, pairs placed in
the order of their values).
"""

from __future__ import annotations

import random

import pytest

from tokend.engine import _native

from tests.engine._bucket_support import (
    LETTERS,
    NATIVE_PATTERN,
    assert_pieces_merge_as_tiktoken,
    assert_text_path_matches_tiktoken,
)

_BUCKET_PIECE = _native.BUCKET_PIECE
_ROWS_PIECE = _native.ROWS_PIECE


def _pieces() -> dict[str, bytes]:
    rng = random.Random(20261207)
    others = bytes(b for b in range(256) if b != ord("e"))[:200]
    pieces = {}
    for size in (_BUCKET_PIECE, _ROWS_PIECE):
        for symbols in (15, 16, 17):  # distinct byte pairs around 256
            pieces[f"{symbols} symbols, {size}"] = bytes(rng.choices(LETTERS[:symbols], k=size))
        for share in (0.10, 0.13, 0.5):  # the longest row around an eighth of the piece
            pieces[f"'e' {share:.0%}, {size}"] = bytes(
                ord("e") if rng.random() < share else rng.choice(others) for _ in range(size))
        pieces[f"every byte, {size}"] = bytes(rng.choices(range(256), k=size))
    for size in (_ROWS_PIECE - 1, _ROWS_PIECE + 1):  # one pass and two, all else alike
        pieces[f"lowercase, {size}"] = bytes(rng.choices(LETTERS, k=size))
    return pieces


@pytest.mark.parametrize("name", NATIVE_PATTERN)
def test_pieces_on_both_sides_of_the_scatter_by_rows_merge_as_tiktoken(name):
    assert_pieces_merge_as_tiktoken(name, _pieces())


@pytest.mark.parametrize("name", NATIVE_PATTERN)
def test_a_huge_piece_counted_and_encoded_by_rows_gives_tiktokens_ids(name):
    assert_text_path_matches_tiktoken(name, _ROWS_PIECE + 3, seed=7)
