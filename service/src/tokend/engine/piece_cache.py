"""The piece cache: str piece -> token ids, bounded, thread-safe, hit at C speed.

Why a dict subclass: `map(cache.__getitem__, pieces)` (or `map(cache.get, ...)`) runs entirely in C for
hits; only a miss enters Python (`__missing__`), which runs BPE and stores the result. Any LRU bookkeeping
on hits would cost more than the BPE it saves, so eviction is FIFO over the learned entries: when
`capacity` learned entries are held, the oldest half is dropped (hot entries come back on their next use).
Rejected: clearing everything when full — measured on English, a cache that fills during warm-up is wiped
in the middle of the next text and the hit rate collapses (steady state fell from ~16 to ~5 MB/s).

The seed (pieces that are themselves tokens) is never evicted.

Memory bound: seed entries (at most one per mergeable token) + `capacity` learned entries, each a key of
at most `max_piece_chars` (48) characters and a tuple of at most `max_ids` (24) ids, plus a dict and a
deque slot: at most ~600 bytes per entry (48 four-byte characters ~ 270 B, 24 pointers ~ 250 B, slots
~ 70 B; the ints are shared with the ranks), typically ~150 B. An Encoding has a piece cache of
`piece_cache_capacity` (65,536) and a word-chunk cache of twice that: worst case ~115 MB; measured
~40-46 MB once full of real text (12 MB of English, code and multilingual; tracemalloc), on top of ~29 MB
(cl100k_base) / ~62 MB (o200k_base) for the Encoding itself. Longer keys or longer id lists are never stored (rare in real text, and exactly
what an attacker would send).

>>> cache = PieceCache({"a": (0,)}, lambda piece: (len(piece),), capacity=2)
>>> [cache[p] for p in ("a", "bb", "bb")]
[(0,), (2,), (2,)]
>>> cache.note_lookups(3); cache.stats()
PieceCacheStats(hits=2, misses=1, size=1, capacity=2)

Thread safety: dict reads and writes are atomic under the GIL; the miss counter and eviction take a lock.
Two threads missing the same piece both compute it (same result) — cheaper than locking every miss. The
lookup counter is updated without a lock (hot path), so under heavy concurrency `hits` may undercount.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from itertools import compress, count
from operator import not_
from typing import NamedTuple

__all__ = ["PieceCache", "PieceCacheStats", "DEFAULT_CAPACITY", "DEFAULT_MAX_PIECE_CHARS", "DEFAULT_MAX_IDS"]

DEFAULT_CAPACITY = 65_536
DEFAULT_MAX_PIECE_CHARS = 48
DEFAULT_MAX_IDS = 24


class PieceCacheStats(NamedTuple):
    hits: int
    misses: int
    size: int  # learned entries currently held (the seed is not counted)
    capacity: int


class PieceCache(dict):
    """`cache[piece]` -> tuple of ids; computes and remembers misses. Call `note_lookups(n)` per batch of
    lookups so hits can be derived without per-hit work."""

    __slots__ = ("_compute", "_capacity", "_max_piece_chars", "_max_ids", "_lock", "_lookups", "_misses", "_learned")

    def __init__(
        self,
        seed: Mapping[str, tuple[int, ...]],
        compute: Callable[[str], tuple[int, ...]],
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_piece_chars: int = DEFAULT_MAX_PIECE_CHARS,
        max_ids: int = DEFAULT_MAX_IDS,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"piece cache capacity must be >= 0, got {capacity}")
        super().__init__(seed)
        self._compute = compute
        self._capacity = capacity
        self._max_piece_chars = max_piece_chars
        self._max_ids = max_ids
        self._lock = threading.Lock()
        self._lookups = 0
        self._misses = 0
        self._learned: deque[str] = deque()  # learned keys, oldest first

    def __missing__(self, piece: str) -> tuple[int, ...]:
        ids = self._compute(piece)
        with self._lock:
            self._misses += 1
            if len(piece) <= self._max_piece_chars and len(ids) <= self._max_ids and self._capacity:
                self._make_room(1)
                self[piece] = ids
                self._learned.append(piece)
        return ids

    def fill_missing(self, pieces: list[str], found: list[tuple[int, ...] | None]) -> None:
        """Replace each None in `found` (= `list(map(cache.get, pieces))`) by the computed ids, and store them.

        Batched misses: one lock and one `add_computed` per call instead of a `__missing__` frame per miss
        (measured with a trivial `compute`: ~400 ns per miss through `__missing__`, ~230 ns here).
        """
        compute = self._compute
        computed: dict[str, tuple[int, ...]] = {}
        for index in compress(count(), map(not_, found)):  # ids are never empty: falsy means None
            piece = pieces[index]
            ids = computed.get(piece)
            if ids is None:
                ids = computed[piece] = compute(piece)
            found[index] = ids
        self.add_computed(computed)

    def add_computed(self, computed: Mapping[str, tuple[int, ...]]) -> None:
        """Store entries computed outside `__missing__` (batched misses); each counts as one miss."""
        with self._lock:
            self._misses += len(computed)
            if not self._capacity:
                return
            limit = self._max_piece_chars
            max_ids = self._max_ids
            fresh = [
                piece
                for piece, ids in computed.items()
                if len(piece) <= limit and len(ids) <= max_ids and piece not in self
            ]
            fresh = fresh[-self._capacity :]
            self._make_room(len(fresh))
            for piece in fresh:
                self[piece] = computed[piece]
            self._learned.extend(fresh)

    def _make_room(self, needed: int) -> None:
        # Called with the lock held: drop the oldest half of the learned entries when full.
        learned = self._learned
        if len(learned) + needed <= self._capacity:
            return
        drop = max(len(learned) - self._capacity // 2, len(learned) + needed - self._capacity)
        pop = self.pop
        for _ in range(min(drop, len(learned))):
            pop(learned.popleft(), None)

    def note_lookups(self, count: int) -> None:
        # No lock: this runs once per call on the hot path. Under concurrent use an increment can be lost
        # (the counters stay monotonic); single-threaded the stats are exact.
        self._lookups += count

    def stats(self) -> PieceCacheStats:
        with self._lock:
            misses = self._misses
            hits = max(self._lookups - misses, 0)
            size = len(self._learned)
        return PieceCacheStats(hits=hits, misses=misses, size=size, capacity=self._capacity)

    # A cache is not a value: never compare or pickle its contents.
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def __reduce__(self):
        raise TypeError("PieceCache is not picklable; pickle the Encoding, which rebuilds its cache")
