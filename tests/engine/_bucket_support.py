"""Shared parts of the bucket merge's tests (test_bucket_scatter.py, test_bucket_pair_counts.py): a native core
per tiktoken encoding, and the two checks each threshold of native/bpe_bucket_merge.c is tested by.

    >>> assert_pieces_merge_as_tiktoken("cl100k_base", {"lowercase": b"abcdefgh" * 2048})
    >>> assert_text_path_matches_tiktoken("cl100k_base", 20_000, seed=1)
"""

from __future__ import annotations

import functools
import random

import tiktoken

import tokend
from tokend.engine import _native
from tokend.engine._native import BpeCore

NATIVE_PATTERN = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
LETTERS = b"etaoinshrdlcumwfgypbvkjxqz"


@functools.lru_cache(maxsize=None)
def core(name: str) -> BpeCore:
    return BpeCore(dict(tokend.get_encoding(name)._mergeable_ranks), NATIVE_PATTERN[name], hash_seed=0x5EED)


def assert_pieces_merge_as_tiktoken(name: str, pieces: dict[str, bytes]) -> None:
    """Each piece merged by the core gives tiktoken's ids, and every one took the bucket merge (none fell back),
    so the path under test is the one that answered."""
    merger, oracle = core(name), tiktoken.get_encoding(name)
    before = _native._merge_counters()
    for kind, piece in pieces.items():
        assert merger.merge(piece) == oracle._encode_single_piece(piece), kind
    after = _native._merge_counters()
    assert after["bucket_merges"] - before["bucket_merges"] == len(pieces)
    assert after["bucket_fallbacks"] == before["bucket_fallbacks"]


def assert_text_path_matches_tiktoken(name: str, size: int, seed: int) -> None:
    """One piece of `size` random lowercase letters, counted (the first round in its own array) and encoded (in
    the ids' room) through the encoding's text path, as tiktoken encodes it."""
    encoding, oracle = tokend.get_encoding(name), tiktoken.get_encoding(name)
    text = "".join(random.Random(seed).choices("abcdefghijklmnopqrstuvwxyz", k=size))
    expected = oracle.encode_ordinary(text)
    assert encoding.encode_ordinary(text) == expected
    assert encoding.count(text) == len(expected)
