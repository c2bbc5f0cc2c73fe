"""One round of the single-thread throughput measurement: every peer, the same unseen text, interleaved.

    rates = measure_cell(peers, warm_texts, {"encode": part_a, "count": part_b})
    rates[("fastokens", "encode")]            # MB/s of UTF-8 input

Method (the numbers in docs/bench-engine.md come from here):
- The caller hands in *fresh* peer instances, so no cache holds the measured text. Each peer first
  encodes the warm-up texts (other documents of the same kind), so steady state is measured — tables
  paged in, caches holding common pieces — on text it has not seen.
- Each operation gets its own disjoint part of the text (one operation does not warm the cache for the
  next); "replay" encodes the encode part once more, i.e. text seen before: a cache's ceiling, reported
  apart from the steady state.
- The peers take turns block by block (~256 KB of documents; the order rotates each block), so a change of
  load on the shared machine hits all of them, while each still runs a stretch of text with its tables
  hot in the CPU caches. With 64 KB blocks, tokend and fastokens ran 30-40 % below their speed
  alone in the same hour (a turn starts with the previous library's tables in the CPU caches); larger
  blocks leave fewer turns for that to cost.
- The warm-up takes turns block by block too. Warmed one after the other, the peer warmed first ran
  10-15 % slower than the one warmed last for the whole cell (two fresh cl100k_base encodings: 0.87 of each
  other listed one way round, 1.15 the other way; taking turns: 0.93-1.00).
- Time is CPU time of this process (`time.process_time`): time spent descheduled by other load counts
  against no one, and a library that spreads one call over threads pays for every thread.
- Every peer gets its own new str objects for each turn (copied before its clock starts), as a request's
  text would be. CPython keeps a non-ASCII str's UTF-8 in the str once anything asked for it (tiktoken's and
  the Rust bindings' way in, and the exactness check before the rounds did), so a peer handed the same
  objects read UTF-8 made on someone else's time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from bench.peers import Peer

__all__ = ["BLOCK_BYTES", "OPERATIONS", "measure_cell", "megabytes"]

OPERATIONS = ("encode", "count", "replay")
BLOCK_BYTES = 256_000

# CPU time of this process: time spent descheduled by other load does not count against either side.
_clock = time.process_time


def megabytes(texts: Sequence[str]) -> float:
    return sum(len(text.encode("utf-8")) for text in texts) / 1e6


def measure_cell(
    peers: Sequence[Peer], warm: Sequence[str], parts: Mapping[str, Sequence[str]]
) -> dict[tuple[str, str], float]:
    """MB/s per (peer key, operation) on `parts` ("encode", "count"), after warming every peer on `warm`."""
    _interleaved([peer.encode for peer in peers], warm)  # warmed as measured: taking turns block by block
    rates: dict[tuple[str, str], float] = {}
    functions: dict[str, Callable[[Peer], Callable[[str], object]]] = {
        "encode": lambda peer: peer.encode,
        "count": lambda peer: peer.count,
        "replay": lambda peer: peer.encode,
    }
    for operation in OPERATIONS:
        texts = parts["encode" if operation == "replay" else operation]
        seconds = _interleaved([functions[operation](peer) for peer in peers], texts)
        size = megabytes(texts)
        for peer, spent in zip(peers, seconds):
            rates[(peer.key, operation)] = size / spent if spent > 0 else float("inf")
    return rates


def _interleaved(functions: Sequence[Callable[[str], object]], texts: Sequence[str]) -> list[float]:
    seconds = [0.0] * len(functions)
    for turn, block in enumerate(_blocks(texts)):
        order = [(turn + i) % len(functions) for i in range(len(functions))]
        for index in order:
            function = functions[index]
            fresh = [(text + " ")[:-1] for text in block]  # new str objects: no UTF-8 kept in them yet
            started = _clock()
            for text in fresh:
                function(text)
            seconds[index] += _clock() - started
    return seconds


def _blocks(texts: Sequence[str]) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    size = 0
    for text in texts:
        if size >= BLOCK_BYTES:
            blocks.append([])
            size = 0
        blocks[-1].append(text)
        size += len(text)
    return [block for block in blocks if block]
