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

import functools
import random

import pytest
import tiktoken

import tokend
from tokend.engine import _native
from tokend.engine._native import BpeCore

_BUCKET_PIECE = _native.BUCKET_PIECE
_ROWS_PIECE = _native.ROWS_PIECE
_NATIVE_PATTERN = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"


@functools.lru_cache(maxsize=None)
def _core(name: str) -> BpeCore:
    return BpeCore(dict(tokend.get_encoding(name)._mergeable_ranks), _NATIVE_PATTERN[name], hash_seed=0x5EED)


def _pieces() -> dict[str, bytes]:
    rng = random.Random(20261207)
    others = bytes(b for b in range(256) if b != ord("e"))[:200]
    pieces = {}
    for size in (_BUCKET_PIECE, _ROWS_PIECE):
        for symbols in (15, 16, 17):  # distinct byte pairs around 256
            pieces[f"{symbols} symbols, {size}"] = bytes(rng.choices(_LETTERS[:symbols], k=size))
        for share in (0.10, 0.13, 0.5):  # the longest row around an eighth of the piece
            pieces[f"'e' {share:.0%}, {size}"] = bytes(
                ord("e") if rng.random() < share else rng.choice(others) for _ in range(size))
        pieces[f"every byte, {size}"] = bytes(rng.choices(range(256), k=size))
    for size in (_ROWS_PIECE - 1, _ROWS_PIECE + 1):  # one pass and two, all else alike
        pieces[f"lowercase, {size}"] = bytes(rng.choices(_LETTERS, k=size))
    return pieces


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_pieces_on_both_sides_of_the_scatter_by_rows_merge_as_tiktoken(name):
    core, oracle = _core(name), tiktoken.get_encoding(name)
    before = _native._merge_counters()
    pieces = _pieces()
    for kind, piece in pieces.items():
        expected = oracle._encode_single_piece(piece)
        assert core.merge(piece) == expected, kind
    after = _native._merge_counters()
    assert after["bucket_merges"] - before["bucket_merges"] == len(pieces)
    assert after["bucket_fallbacks"] == before["bucket_fallbacks"]


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_a_huge_piece_counted_and_encoded_by_rows_gives_tiktokens_ids(name):
    # count (the first round in its own array) and encode (in the ids' room) of one piece of random lowercase
    # letters, through the encoding's text path
    encoding, oracle = tokend.get_encoding(name), tiktoken.get_encoding(name)
    text = "".join(random.Random(7).choices("abcdefghijklmnopqrstuvwxyz", k=_ROWS_PIECE + 3))
    expected = oracle.encode_ordinary(text)
    assert encoding.encode_ordinary(text) == expected
    assert encoding.count(text) == len(expected)
