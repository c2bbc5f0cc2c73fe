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

import functools
import random

import pytest
import tiktoken

import tokend
from tokend.engine import _native
from tokend.engine._native import BpeCore

_TWO_COUNTERS_PIECE = _native.TWO_COUNTERS_PIECE
_NATIVE_PATTERN = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"


@functools.lru_cache(maxsize=None)
def _core(name: str) -> BpeCore:
    return BpeCore(dict(tokend.get_encoding(name)._mergeable_ranks), _NATIVE_PATTERN[name], hash_seed=0x5EED)


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
        pieces[f"lowercase, {size}"] = bytes(rng.choices(_LETTERS, k=body)) + b"Qu"
        pieces[f"runs of three letters, {size}"] = _runs(rng, body) + b"Qu"
        # "abab...": one pair at even offsets, the other at odd ones, a "c" now and then so it is no run merge
        pieces[f"two letters alternating, {size}"] = bytes(
            ord("c") if rng.random() < 0.001 else b"ab"[k % 2] for k in range(body)) + b"Qu"
        not_q = [b for b in range(256) if b != ord("Q")]
        pieces[f"every byte but Q, {size}"] = bytes(rng.choices(not_q, k=body)) + b"Qu"
    return pieces


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_pieces_around_the_two_counters_size_merge_as_tiktoken(name):
    core, oracle = _core(name), tiktoken.get_encoding(name)
    assert oracle.encode_single_token(b"Qu") >= 0  # a token (KeyError if not): the last pair has to be counted
    before = _native._merge_counters()
    pieces = _pieces()
    for kind, piece in pieces.items():
        assert core.merge(piece) == oracle._encode_single_piece(piece), kind
    after = _native._merge_counters()
    assert after["bucket_merges"] - before["bucket_merges"] == len(pieces)  # every piece took the bucket merge
    assert after["bucket_fallbacks"] == before["bucket_fallbacks"]


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_a_piece_of_two_counters_counted_and_encoded_gives_tiktokens_ids(name):
    # count (the first round in its own array) and encode (in the ids' room) through the encoding's text path,
    # an odd number of pairs
    encoding, oracle = tokend.get_encoding(name), tiktoken.get_encoding(name)
    text = "".join(random.Random(11).choices("abcdefghijklmnopqrstuvwxyz", k=_TWO_COUNTERS_PIECE + 2))
    expected = oracle.encode_ordinary(text)
    assert encoding.encode_ordinary(text) == expected
    assert encoding.count(text) == len(expected)
