"""The bucket merge's byte pairs counted into two tables (native/bpe_bucket_merge.c, count_pairs_in_two), against
tiktoken.

A huge piece's byte pairs are counted before its first round is sorted by pair: a pair at a time into one table
for a piece under _native.TWO_COUNTERS_PIECE bytes, the pairs at even and at odd offsets into two tables and then
summed from that size on. A count off by one gives a pair's offsets a wrong place in the first round (a rank then
merges another pair's offsets, or misses its own): the ids differ. The pieces sit one byte under the size (one
table), at it (two, an odd number of pairs: the last one counted after the loop) and one byte over (two, an even
number), each ending in "Qu": a pair that occurs there only, as the last, and is a token.
"""

from __future__ import annotations

import random

import pytest
import tiktoken

from tokend.engine import _native

from tests.engine._bucket_support import (
    LETTERS,
    NATIVE_PATTERN,
    assert_pieces_merge_as_tiktoken,
    assert_text_path_matches_tiktoken,
)

_TWO_COUNTERS_PIECE = _native.TWO_COUNTERS_PIECE


def _runs(rng: random.Random, size: int) -> bytes:
    # runs of 1-12 equal bytes of three letters: the same pair many times in a row, in both tables
    out = bytearray()
    while len(out) < size:
        out += bytes([rng.choice(b"abc")]) * rng.randint(1, 12)
    return bytes(out[:size])


def _pieces() -> dict[str, bytes]:
    rng = random.Random(20261207)
    pieces = {}
    for size in (_TWO_COUNTERS_PIECE - 1, _TWO_COUNTERS_PIECE, _TWO_COUNTERS_PIECE + 1):
        body = size - 2  # each piece ends in b"Qu"
        pieces[f"lowercase, {size}"] = bytes(rng.choices(LETTERS, k=body)) + b"Qu"
        pieces[f"runs of three letters, {size}"] = _runs(rng, body) + b"Qu"
        # "abab...": one pair at even offsets, the other at odd ones, a "c" now and then so it is no run merge
        pieces[f"two letters alternating, {size}"] = bytes(
            ord("c") if rng.random() < 0.001 else b"ab"[k % 2] for k in range(body)) + b"Qu"
        not_q = [b for b in range(256) if b != ord("Q")]
        pieces[f"every byte but Q, {size}"] = bytes(rng.choices(not_q, k=body)) + b"Qu"
    return pieces


@pytest.mark.parametrize("name", NATIVE_PATTERN)
def test_pieces_around_the_two_counters_size_merge_as_tiktoken(name):
    # "Qu" a token (KeyError if not): the last pair has to be counted
    assert tiktoken.get_encoding(name).encode_single_token(b"Qu") >= 0
    assert_pieces_merge_as_tiktoken(name, _pieces())


@pytest.mark.parametrize("name", NATIVE_PATTERN)
def test_a_piece_of_two_counters_counted_and_encoded_gives_tiktokens_ids(name):
    assert_text_path_matches_tiktoken(name, _TWO_COUNTERS_PIECE + 2, seed=11)  # an odd number of pairs
