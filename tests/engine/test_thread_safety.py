"""One Encoding shared by many threads gives the same ids as a single thread, with a tiny cache whose
generations rotate constantly (the worst case for its eviction)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.corpus import corpus_texts
from tokend.engine import Encoding


def test_threads_share_an_encoding(oracle):
    enc = Encoding(
        oracle.name,
        pat_str=oracle._pat_str,
        mergeable_ranks=oracle._mergeable_ranks,
        special_tokens=oracle._special_tokens,
        piece_cache_capacity=64,
    )
    texts = corpus_texts(limit_bytes=15_000, kinds=("english", "code", "multilingual"))
    expected = [oracle.encode_ordinary(text) for text in texts]

    def work(offset: int) -> bool:
        order = texts[offset:] + texts[:offset]
        wanted = expected[offset:] + expected[:offset]
        return all(enc.encode_ordinary(t) == w and enc.count_ordinary(t) == len(w) for t, w in zip(order, wanted))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(16)))
    stats = enc.piece_cache_stats()
    # two generations of piece_cache_capacity entries
    assert stats.capacity == 128 and stats.size <= stats.capacity
    assert stats.misses > 0 and stats.hits > 0


def test_cache_stats_count_hits_and_misses(oracle):
    enc = Encoding("fresh", pat_str=oracle._pat_str, mergeable_ranks=oracle._mergeable_ranks, special_tokens={})
    start = enc.piece_cache_stats()
    assert (start.hits, start.misses, start.size) == (0, 0, 0) and start.capacity >= 65_536
    enc.encode_ordinary("zxqvjk zxqvjk zxqvjk")  # not tokens (and longer than 5 bytes): computed (missed) once, then found (hit)
    first = enc.piece_cache_stats()
    assert first.misses >= 1 and first.hits >= 1 and first.size >= 1
    enc.encode_ordinary("zxqvjk zxqvjk zxqvjk")  # the same text again: only hits
    second = enc.piece_cache_stats()
    assert second.misses == first.misses and second.hits > first.hits
    enc.encode_ordinary("the")  # a token: found in the vocabulary, never a cache lookup
    assert enc.piece_cache_stats().misses == first.misses
