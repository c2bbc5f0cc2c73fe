"""The native piece cache, seen through `BpeCore.cache_stats()` -> (hits, misses, size, capacity).

    >>> core = BpeCore(ranks, "cl100k")
    >>> first, second = core.encode(" xyzzyq"), core.encode(" xyzzyq")  # not a token: merged once, then found
    >>> core.cache_stats()[:3]
    (1, 1, 1)

Only pieces that are not tokens themselves and are longer than 5 bytes go through the cache (shorter ones merge
in a few table lookups, cheaper than the cache); in a big text, pieces of up to 15 bytes skip it for a while
when it finds almost none of them. Its size is bounded whatever the input (two
generations of `cache_capacity` entries), pieces longer than `max_cached_piece_bytes` are never stored, and
results are exact whatever the cache holds: against a core without cache and against tiktoken.
"""

from __future__ import annotations

import functools
import random
import string
import sys
import threading
import time

import pytest
import regex
import tiktoken

import tokend
from tokend.engine._native import BpeCore
from tokend.engine.patterns import GPT4_PATTERN


@functools.lru_cache(maxsize=None)
def _ranks() -> dict[bytes, int]:
    return dict(tokend.get_encoding("cl100k_base")._mergeable_ranks)


@functools.lru_cache(maxsize=None)
def _oracle() -> tiktoken.Encoding:
    return tiktoken.get_encoding("cl100k_base")


def _core(**options) -> BpeCore:
    return BpeCore(_ranks(), "cl100k", **options)


def _non_token_words(count: int, *, seed: int = 1, length: tuple[int, int] = (5, 12)) -> list[str]:
    """Distinct pieces " xxxx" of random lower-case letters that cl100k splits as one piece each and that
    are not tokens (so each goes through the cache)."""
    rng = random.Random(seed)
    ranks = _ranks()
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        word = " " + "".join(rng.choices(string.ascii_lowercase, k=rng.randint(*length)))
        if word not in seen and word.encode() not in ranks:
            seen.add(word)
            words.append(word)
    assert regex.findall(GPT4_PATTERN, "".join(words)) == words  # one piece each
    return words


def test_second_pass_only_hits():
    core = _core()
    words = _non_token_words(200)
    text = "".join(words)
    expected = _oracle().encode_ordinary(text)
    assert core.cache_stats() == (0, 0, 0, core.cache_stats()[3])
    assert core.encode(text) == expected
    assert core.cache_stats()[:3] == (0, 200, 200)
    assert core.encode(text) == expected
    assert core.cache_stats()[:3] == (200, 200, 200)
    assert core.count(text) == len(expected)
    assert core.cache_stats()[:3] == (400, 200, 200)


def test_tokens_and_single_bytes_bypass_the_cache():
    core = _core()
    text = " hello world, the of and" * 10 + "!?x"
    assert all(piece.encode() in _ranks() for piece in regex.findall(GPT4_PATTERN, text))
    assert core.encode(text) == _oracle().encode_ordinary(text)
    assert core.encode_piece(b" hello") == [_ranks()[b" hello"]]
    assert core.cache_stats()[:3] == (0, 0, 0)


def test_short_pieces_that_are_not_tokens_bypass_the_cache():
    core = _core()
    text = " ".join(["qzx Xqzv qzxv zzqx jqxz"] * 3)
    pieces = regex.findall(GPT4_PATTERN, text)
    assert all(len(piece.encode()) <= 5 for piece in pieces)
    assert sum(piece.encode() not in _ranks() for piece in pieces) >= 3  # merged, yet not cached
    assert core.encode(text) == _oracle().encode_ordinary(text)
    assert core.count(text) == len(_oracle().encode_ordinary(text))
    assert core.cache_stats()[:3] == (0, 0, 0)


def test_unseen_short_pieces_of_a_big_text_skip_the_cache_for_a_while():
    # A big text (its own worker cache) whose pieces of up to 15 bytes are found in under 1 in 16 lookups merges
    # the next ones without a lookup or a put, counted as misses, then looks again (TK_CACHE_CHEAP_*): 6,000
    # unseen pieces, then 100 others 300 times over. Some of the recurring ones come while it skips (so fewer
    # hits than the 29,900 of a cache that never skips), most after it looked again and found them.
    core = _core()
    fresh = _non_token_words(6000, seed=2, length=(5, 14))
    recurring = [word for word in _non_token_words(140, seed=3, length=(5, 14)) if word not in set(fresh)][:100]
    text = "".join(fresh) + "".join(recurring) * 300
    assert len(text) >= 65536  # the unlocked path: a worker cache, whose counts join the core's
    expected = _oracle().encode_ordinary(text)
    assert core.encode(text) == expected
    hits, misses, _, _ = core.cache_stats()
    assert hits + misses == 6000 + 30_000
    assert 15_000 < hits < 29_900
    assert core.count(text) == len(expected)


def test_encode_piece_shares_the_cache_but_merge_does_not():
    core = _core()
    piece = _non_token_words(1)[0].encode()
    core.merge(piece)
    assert core.cache_stats()[:3] == (0, 0, 0)
    first = core.encode_piece(piece)
    assert core.cache_stats()[:3] == (0, 1, 1)
    assert core.encode_piece(piece) == first == _oracle()._encode_single_piece(piece)
    assert core.cache_stats()[:3] == (1, 1, 1)


def test_size_stays_within_two_generations_and_results_stay_exact():
    small, uncached = _core(cache_capacity=8), _core(cache_capacity=0)
    words = _non_token_words(3000, seed=2)
    # Revisit earlier words now and then, so lookups also hit the previous generation and copy forward.
    rng = random.Random(3)
    stream = [word if rng.random() < 0.7 else rng.choice(words[: i + 1]) for i, word in enumerate(words)]
    for start in range(0, len(stream), 7):
        text = "".join(stream[start : start + 7])
        expected = _oracle().encode_ordinary(text)
        assert small.encode(text) == expected == uncached.encode(text), text
        hits, misses, size, capacity = small.cache_stats()
        assert size <= 16 and size <= capacity
    hits, misses, size, capacity = small.cache_stats()
    assert hits + misses == len(stream) and hits > 0
    assert uncached.cache_stats()[2:] == (0, 0)


def test_small_cache_keeps_recent_pieces():
    core = _core(cache_capacity=8)
    words = _non_token_words(40, seed=4)
    core.encode("".join(words))
    hits_before = core.cache_stats()[0]
    core.encode(words[-1])  # the newest piece is still there
    assert core.cache_stats()[0] == hits_before + 1


def test_a_piece_in_use_survives_a_stream_of_new_pieces():
    # Between two uses of `kept` come 5 new pieces: fewer than one generation (8), so `kept` is always in the
    # current or the previous generation, and a hit in the previous one copies it forward. Without that
    # copy it would fall out after two rotations (16 new pieces).
    core = _core(cache_capacity=8)
    kept, *others = _non_token_words(1 + 5 * 40, seed=11)
    expected = _oracle().encode_ordinary(kept)
    assert core.encode(kept) == expected
    for round_ in range(40):
        core.encode("".join(others[5 * round_ : 5 * round_ + 5]))
        hits = core.cache_stats()[0]
        assert core.encode(kept) == expected
        assert core.cache_stats()[0] == hits + 1, f"round {round_}: {kept!r} was evicted"


def test_pieces_longer_than_the_limit_count_as_misses_and_are_never_stored():
    core = _core(max_cached_piece_bytes=6)
    short = _non_token_words(50, seed=5, length=(5, 5))  # 6 bytes with the space (5 and fewer skip the cache)
    long = _non_token_words(50, seed=6, length=(6, 12))  # 7-13 bytes
    for _ in range(2):
        for word in long:
            assert core.encode(word) == _oracle().encode_ordinary(word)
    hits, misses, size, _ = core.cache_stats()
    # Each lookup is a miss, as in the Python piece cache the native one replaced (oversized pieces were
    # computed, counted as misses, not stored): the misses metric must not hide long pieces.
    assert (hits, misses, size) == (0, 100, 0), "long pieces must count as misses and never be stored"
    core.encode("".join(short))
    assert core.cache_stats()[2] == 50


def test_zero_capacity_works():
    core = _core(cache_capacity=0)
    text = "".join(_non_token_words(100, seed=7)) * 2
    expected = _oracle().encode_ordinary(text)
    assert core.encode(text) == expected and core.count(text) == len(expected)
    assert core.cache_stats()[2:] == (0, 0)


_ROUNDS = 40


def test_threads_share_one_core_exactly():
    core = _core(cache_capacity=64)  # small: the threads' pieces keep rotating the generations
    shared = "".join(_non_token_words(300, seed=8))
    own = ["".join(_non_token_words(300, seed=100 + i)) for i in range(8)]
    expected_shared = _oracle().encode_ordinary(shared)
    expected_own = [_oracle().encode_ordinary(text) for text in own]
    errors: list[str] = []
    barrier = threading.Barrier(8)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(_ROUNDS):
            if core.encode(shared) != expected_shared:
                errors.append(f"thread {i}: shared text")
            if core.encode(own[i]) != expected_own[i] or core.count(own[i]) != len(expected_own[i]):
                errors.append(f"thread {i}: own text")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads between calls as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    hits, misses, size, capacity = core.cache_stats()
    assert hits + misses == 8 * _ROUNDS * (300 + 300 + 300) and size <= capacity


def test_many_distinct_keys_in_a_tiny_cache_stay_fast():
    # 10,000 distinct pieces through a 4-entry cache (constant rotation and probing), then lookups of
    # pieces that are there and pieces that are not. Generous bound: well under a second in practice.
    core = _core(cache_capacity=4)
    words = _non_token_words(10_000, seed=9)
    started = time.monotonic()
    for word in words:
        core.encode(word)
    for _ in range(20):
        for word in words[-4:] + words[:50]:
            core.encode(word)
    assert time.monotonic() - started < 5
    assert core.cache_stats()[2] <= 8
    assert core.encode("".join(words[:500])) == _oracle().encode_ordinary("".join(words[:500]))


@pytest.mark.parametrize("seed", [0, 1, 2**64 - 1])
def test_hash_seed_does_not_change_ids(seed):
    core = _core(hash_seed=seed, cache_capacity=16)
    text = "".join(_non_token_words(200, seed=10)) + " hello world"
    expected = _oracle().encode_ordinary(text)
    assert core.encode(text) == expected and core.encode(text) == expected


def test_capacity_beyond_the_limit_is_refused_with_the_limit_named():
    from tokend.engine import Encoding
    from tokend.engine.piece_cache import MAX_CAPACITY

    ranks = {bytes([i]): i for i in range(256)}
    with pytest.raises(ValueError, match="cache_capacity must be in 0..16777216"):
        BpeCore(ranks, None, cache_capacity=MAX_CAPACITY + 1)
    with pytest.raises(ValueError, match=f"piece_cache_capacity must be in 0..{MAX_CAPACITY}"):
        Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={}, piece_cache_capacity=MAX_CAPACITY + 1)
    with pytest.raises(ValueError, match="piece_cache_capacity must be in"):
        Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={}, piece_cache_capacity=-1)
