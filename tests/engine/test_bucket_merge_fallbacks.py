"""Which merge a huge piece took: the bucket merge (native/bpe_bucket_merge.c) or, handed back, the heap.

A piece of 4,096 bytes (_native.BUCKET_PIECE) or more that is not a few long byte runs is merged rank by rank; when a pair that merge
creates ranks below the rank being merged, it stops and the heap merges the piece from the start. The heap is
exact, so the ids never show the fallback: a first round that decides wrongly and then falls back passes every
test of ids, only slower (worst18b's broken build did). The native module counts both, per process, for
these tests (private):

    >>> from tokend.engine import _native
    >>> sorted(_native._merge_counters())
    ['bucket_fallbacks', 'bucket_merges', 'medium_merges', 'run_merges']

When the fallback is legitimate (bpe_bucket_merge.c): only for ranks not in merge order for the piece, a token
ranked below one of the parts a merge made it from. cl100k_base and o200k_base list tokens ranked below one of
their splits (e.g. four spaces below three), but their merges do not make that split: each such token between
NUL bytes, all in one huge piece, merges without a fallback (evidence, not a proof for every context; no piece
tried falls back). So the huge pieces here must not fall back, and hand-made vocabularies with a token ranked
below its parts must, each time (counted). Ids against tiktoken.
"""

from __future__ import annotations

import functools
import random
import string
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import tiktoken

import tokend
from tokend.engine import _native
from tokend.engine._native import BpeCore

_BUCKET_PIECE = _native.BUCKET_PIECE  # tokend_native.h's TK_BUCKET_PIECE
_SINGLE_BYTES = {bytes([b]): b for b in range(256)}
_NATIVE_PATTERN = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыьэюя"
_GREEK = "αβγδεζηθικλμνξοπρστυφχψω"
_ACCENTED = "éèüßàçñöäå"
_CJK = "中文字符测试数据的一是在不了有和人这"


@functools.lru_cache(maxsize=None)
def _core(name: str) -> BpeCore:
    return BpeCore(dict(tokend.get_encoding(name)._mergeable_ranks), _NATIVE_PATTERN[name], hash_seed=0x5EED)


class _Counted:
    """The change of `_native._merge_counters()` over a `with` block (tests of one process run one at a time)."""

    bucket_merges = bucket_fallbacks = 0


@contextmanager
def _counted() -> Iterator[_Counted]:
    counted, before = _Counted(), _native._merge_counters()
    yield counted
    after = _native._merge_counters()
    counted.bucket_merges = after["bucket_merges"] - before["bucket_merges"]
    counted.bucket_fallbacks = after["bucket_fallbacks"] - before["bucket_fallbacks"]


def _huge_texts(seed: int) -> dict[str, str]:
    """One piece each under both patterns, 0.5-48 KB, that the bucket merge takes: not a few long runs (the run
    merge's), and mixed scripts with ASCII between the other characters (two characters of 2-4 bytes side by
    side may be cut apart: a piece cut into short segments never reaches the buckets)."""
    rng = random.Random(seed)

    def mixed(others: str, share: float, k: int) -> str:
        return "".join(rng.choice(others) if rng.random() < share else rng.choice(string.ascii_lowercase)
                       for _ in range(k))

    texts = {}
    for size in (_BUCKET_PIECE, _BUCKET_PIECE + 63, 16_384, 48_001):
        texts[f"lowercase {size}"] = "".join(rng.choices(string.ascii_lowercase, k=size))
        texts[f"letters {size}"] = "".join(rng.choices(string.ascii_letters, k=size))
        texts[f"frequent letters {size}"] = "".join(rng.choices("etaoinshr", k=size))
        texts[f"accents {size}"] = "".join(rng.choices(string.ascii_lowercase * 3 + _ACCENTED, k=size))
        if size >= 16_384:  # a shorter one is often cut into segments of 128 bytes or less: no bucket merge
            texts[f"scripts {size}"] = mixed(_CYRILLIC + _GREEK + _CJK + _ACCENTED, 0.2, size)
        runs = (rng.choice(string.ascii_lowercase) * rng.choice([1, 1, 2, 3, 5, 9, 17, 40]) for _ in range(size))
        texts[f"runs {size}"] = "".join(runs)[: size + 5]
    return texts


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_huge_pieces_of_real_vocabularies_take_the_bucket_merge_without_falling_back(name):
    core, oracle = _core(name), tiktoken.get_encoding(name)
    for kind, text in _huge_texts(20261206).items():
        piece = text.encode()
        with _counted() as counted:
            ids = core.encode_piece(piece)
            n = core.count_pieces([text])
        assert ids == oracle._encode_single_piece(piece), kind
        assert n == len(ids), kind
        assert (counted.bucket_merges, counted.bucket_fallbacks) == (2, 0), kind


@pytest.mark.parametrize("name", _NATIVE_PATTERN)
def test_huge_pieces_through_the_encoding_and_a_batch_without_falling_back(name):
    # The text path (split, then the merge without the GIL for a big piece) and a batch on two threads: their
    # merges are counted too (relaxed atomic adds), and none falls back.
    encoding, oracle = tokend.get_encoding(name), tiktoken.get_encoding(name)
    texts = [text for kind, text in _huge_texts(18).items() if "letters" not in kind or name == "cl100k_base"]
    with _counted() as counted:  # o200k's pattern splits letters at case changes: no huge piece
        for text in texts:
            assert encoding.encode_ordinary(text) == oracle.encode_ordinary(text)
    assert (counted.bucket_merges, counted.bucket_fallbacks) == (len(texts), 0)
    with _counted() as counted:
        counts = _core(name).encode_batch(texts, 2, count=True)
    assert counts == [len(oracle.encode_ordinary(text)) for text in texts]
    assert (counted.bucket_merges, counted.bucket_fallbacks) == (len(texts), 0)


def test_real_vocabulary_tokens_ranked_below_a_split_never_fall_back():
    # Every token with a split into two tokens of which one ranks above it (43,674 such splits in cl100k_base,
    # 71,370 in o200k_base), between NUL bytes, in one huge piece: the merges of each alone do not make that split.
    for name in _NATIVE_PATTERN:
        ranks = dict(tokend.get_encoding(name)._mergeable_ranks)
        below = sorted(token for token, rank in ranks.items() if len(token) >= 3 and any(
            left in ranks and right in ranks and max(ranks[left], ranks[right]) > rank
            for left, right in ((token[:i], token[i:]) for i in range(1, len(token)))))
        assert len(below) > 30_000, name
        piece = b"\x00".join(below)
        with _counted() as counted:
            ids = _core(name).merge(piece)
        assert ids == tiktoken.get_encoding(name)._encode_single_piece(piece), name
        assert (counted.bucket_merges, counted.bucket_fallbacks) == (1, 0), name


def _random_bytes(alphabet: bytes, size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice(alphabet) for _ in range(size))


# Hand-made vocabularies, one piece each: where the bucket merge must hand the piece to the heap (a token ranked
# below its parts, reached), and the same tokens in merge order, where it must not.
_OUT_OF_ORDER = {
    # "ab" + "c" makes "abc", ranked below "ab": a created pair below the rank being merged
    "created pair": ({b"abc": 256, b"ab": 257}, _random_bytes(b"abcxyz", 20_000, 1)),
    # "cbc" below "cb": in "cbcb" the pair "cb" + "c" exists only between the two merges of "cb", in one window
    # (push_created_pairs' `gone` pairs); letters without tokens around it, in short runs
    "gone pair": ({b"cbc": 256, b"cb": 257}, _random_bytes(b"xyz", 9000, 7) + b"cbcbcb" + _random_bytes(b"xyz", 9000, 8)),
    # two merges up: "ab", then "abab", whose pair with the next "ab" makes "ababab", ranked between them
    "two merges up": ({b"ab": 256, b"ababab": 257, b"abab": 258}, _random_bytes(b"abxy", 30_000, 3)),
}
_IN_ORDER = {
    "created pair": ({b"ab": 256, b"abc": 257}, _OUT_OF_ORDER["created pair"][1]),
    "gone pair": ({b"cb": 256, b"cbc": 257}, _OUT_OF_ORDER["gone pair"][1]),
    "two merges up": ({b"ab": 256, b"abab": 257, b"ababab": 258}, _OUT_OF_ORDER["two merges up"][1]),
}


def _oracle(ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding("hand-made", pat_str=r"[\s\S]+", mergeable_ranks=ranks, special_tokens={})


def _merged_and_counted(tokens: dict[bytes, int], piece: bytes) -> tuple[int, int]:
    """(bucket merges, fallbacks) of merging and counting `piece` under the single bytes and `tokens`, both
    checked against tiktoken."""
    ranks = _SINGLE_BYTES | tokens
    core, expected = BpeCore(ranks, None, cache_capacity=0), _oracle(ranks)._encode_single_piece(piece)
    with _counted() as counted:
        assert core.merge(piece) == expected
        assert core.count_pieces([piece.decode()]) == len(expected)
    return counted.bucket_merges, counted.bucket_fallbacks


@pytest.mark.parametrize("case", _OUT_OF_ORDER)
def test_a_token_ranked_below_its_parts_falls_back_and_is_counted(case):
    assert _merged_and_counted(*_OUT_OF_ORDER[case]) == (2, 2)


@pytest.mark.parametrize("case", _IN_ORDER)
def test_the_same_tokens_in_merge_order_take_the_bucket_merge(case):
    assert _merged_and_counted(*_IN_ORDER[case]) == (2, 0)


@pytest.mark.parametrize("repeats", [4096, 4097, 4160])
def test_a_rank_whose_merges_fill_whole_windows_keeps_its_last_created_pairs(repeats):
    # A window of a rank's merges (64: bpe_bucket_merge.c's TK_MERGE_WINDOW) has its created pairs looked up and
    # pushed after the rank's next window of merges, and the rank's last call pushes the ones held back. "ab"
    # merges once per "abcx": 4096 and 4160 repeats end the rank on a full window, with no partial one after it
    # (its last "abc" pairs must still be pushed before the rank of "abc" is merged), 4097 one merge past one.
    assert _merged_and_counted({b"ab": 256, b"abc": 257}, b"abcx" * repeats) == (2, 0)



def test_a_fallback_leaves_no_rank_marked_for_the_next_merge():
    # The bucket merge's per-rank arrays (native/rank_marks.h) are lent zeroed and kept between merges: each rank's
    # turn clears its entry, and a merge that stops (the fallback) clears the ranks still pending. Here "ab" is
    # merged first and makes "abc", ranked below it: the fallback comes while the other letters' byte pairs (ranks
    # 258-263) still wait. One of them left marked would name a list of that merge in the next one.
    others = {pair.encode(): 258 + k for k, pair in enumerate(["xy", "yz", "zx", "xz", "zy", "yx"])}
    piece = _random_bytes(b"abcxyz", 20_000, 26)
    lowercase = "".join(random.Random(26).choices(string.ascii_lowercase, k=_BUCKET_PIECE + 5)).encode()
    for _ in range(2):
        assert _merged_and_counted({b"abc": 256, b"ab": 257} | others, piece) == (2, 2)
        assert _native._rank_marks_left() == 0
        assert _merged_and_counted({b"ab": 256, b"abc": 257}, piece) == (2, 0)
        with _counted() as counted:
            assert _core("cl100k_base").merge(lowercase) == tiktoken.get_encoding("cl100k_base")._encode_single_piece(lowercase)
        assert (counted.bucket_merges, counted.bucket_fallbacks) == (1, 0)
        assert _native._rank_marks_left() == 0
