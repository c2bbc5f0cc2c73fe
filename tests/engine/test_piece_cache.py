"""The piece cache's bounds: FIFO eviction of learned entries, a permanent seed, size limits per entry."""

from __future__ import annotations

from tokend.engine.piece_cache import PieceCache


def _cache(**kwargs) -> tuple[PieceCache, list[str]]:
    computed: list[str] = []

    def compute(piece: str) -> tuple[int, ...]:
        computed.append(piece)
        return tuple(range(len(piece)))

    return PieceCache({"seed": (7,)}, compute, **kwargs), computed


def test_learned_entries_stay_within_capacity_and_seed_survives():
    cache, computed = _cache(capacity=10)
    for i in range(1000):
        assert cache[f"p{i}"] == tuple(range(len(f"p{i}")))
        assert cache.stats().size <= 10
    assert cache["seed"] == (7,) and "seed" not in computed
    # the newest entries are kept, the oldest dropped
    before = len(computed)
    cache["p999"]
    cache["p0"]
    assert computed[before:] == ["p0"]


def test_oversized_entries_are_computed_but_not_stored():
    cache, computed = _cache(capacity=10, max_piece_chars=5, max_ids=3)
    for piece in ("long-piece", "abcd", "abcd", "abc", "abc"):
        cache[piece]
    assert computed == ["long-piece", "abcd", "abcd", "abc"]  # "abcd" has 4 ids > 3; "abc" fits
    assert cache.stats() == (0, 4, 1, 10)  # no lookups were noted, so no hits are derived


def test_batched_entries_respect_the_same_bounds():
    cache, _ = _cache(capacity=4, max_piece_chars=5)
    cache.add_computed({f"k{i}": (i,) for i in range(3)} | {"too-long": (1,)})
    assert cache.stats().size == 3 and "too-long" not in cache
    cache.add_computed({f"n{i}": (i,) for i in range(3)})
    assert cache.stats().size <= 4 and all(f"n{i}" in cache for i in range(3))


def test_zero_capacity_stores_nothing():
    cache, computed = _cache(capacity=0)
    cache["x"], cache["x"]
    assert computed == ["x", "x"] and cache.stats().size == 0
