"""The piece cache: what it holds, what it costs, and its statistics type. (The cache itself is C:
service/native/piece_cache.c, one per Encoding, inside its native core.)

It maps a piece's bytes to its ids, for pieces that are not tokens themselves (the BPE results); pieces
that are tokens are found in the vocabulary table first and never enter it.

In front of it, once an Encoding has encoded 256 KiB in texts under 64 KiB, stands the short-piece table
(service/native/short_table.h): pieces of at most 15 bytes, tokens and merged pieces alike, one probe each.
Merged pieces of that length go there first (65,536 at most; added by texts under 64 KiB, read by batches
and bigger texts too), the piece cache takes the longer ones, and the short ones while the table is full:
once it has served 128 MiB of text full, the next text or batch to start with no call using it without the GIL
refills it (the tokens alone again, ~2 ms; calls starting while that is due go without it, so that big texts
back to back cannot hold it off), so one caller's random words cannot keep it full for good. The statistics count the
table's finds of merged pieces as hits and their merges as misses, and `size` counts the piece cache's
entries only. Its memory is fixed when it is built: ~19-22 MiB for cl100k_base and o200k_base (32 bytes a
slot, slots >= 2 x its tokens and merged pieces; 24 bytes a token for the refill), paid only by the
Encodings a process uses that much.

SentencePieceEncoding differs: its short table holds segments only (no tokens), is built with the core
(32 bytes a slot, slots the power of two >= 1.5 x min(capacity, 65,536), at least 1,024, plus 16 bytes of
ids per segment: 5 MiB at 65,536), is emptied when full, and its statistics count it in: `size` adds the
segments it holds and `capacity` the most it may hold (sp_module.c).

Eviction: two generations of `piece_cache_capacity` entries; lookups read the current generation, then
the previous one (a hit there is copied forward); when the current one is full the previous one is
dropped. An approximate LRU with O(1) work per operation and no bookkeeping on hits.
Rejected: clearing everything when full — a cache that fills during warm-up is wiped in the middle of the
next text and the hit rate collapses (measured with the Python engine this core replaced: steady state
fell from ~16 to ~5 MB/s).

Memory bound, fixed at construction whatever the input: 176 bytes per unit of capacity (per generation:
two 4-byte slots, a 16-byte entry and 64 arena bytes for keys and ids; a generation also rotates when its
arena is full), ~11.5 MB at the default 65,536. Pieces longer than `DEFAULT_MAX_PIECE_BYTES` (128) are
never stored (rare in real text, and exactly what an attacker would send). Probe sequences are capped
(32), so keys crafted to collide cost bounded time.

Thread safety: the cache is only read and written with the GIL held (the core releases the GIL for the merge
of long pieces and for finding the pieces of big texts, neither of which touches the cache), so calls from
several threads never race on it and the statistics are exact.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> _ = enc.encode("xyzzyq xyzzyq xyzzyq")  # " xyzzyq" is not a token: merged once, then found
>>> enc.piece_cache_stats().hits >= 1
True
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["PieceCacheStats", "DEFAULT_CAPACITY", "DEFAULT_MAX_PIECE_BYTES", "MAX_CAPACITY"]

DEFAULT_CAPACITY = 65_536
MAX_CAPACITY = 1 << 24  # entries per generation (32-bit arena offsets; ~3 GB of cache)
DEFAULT_MAX_PIECE_BYTES = 128


class PieceCacheStats(NamedTuple):
    hits: int
    misses: int
    size: int  # entries currently held (both generations)
    capacity: int  # entries both generations can hold
