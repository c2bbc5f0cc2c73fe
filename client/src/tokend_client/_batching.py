"""Split a batch of any length into requests under the server's limits, and put the answers back in order.

A tokend server refuses requests with more than `max_batch_items` inputs or more than `max_request_bytes`
input bytes (defaults 1024 and 8 MiB, DEVELOPERS.md) with RESOURCE_EXHAUSTED. The client starts from
configured limits (those defaults unless told otherwise), and when a server answers RESOURCE_EXHAUSTED it
learns the smaller limit — the one the server names (ErrorInfo `limit_name`/`limit`), or by halving
the request when none is named (gRPC's own message-size check) — re-splits that part of the batch and
tries again. Learned limits are kept (`RequestLimits` is shared by all calls of one client).

Besides obeying limits, a large batch is cut into at least `parallelism` requests (when it is big enough
to be worth it: `MIN_PARALLEL_REQUEST_BYTES` each) so that the requests can go to different server workers at once.

    plan = BatchPlan([len(t.encode()) for t in texts], limits, parallelism=4)
    while not plan.done:
        chunk = plan.take()          # None while everything is in flight
        ...send texts[chunk.start:chunk.stop]; on its answer: plan.complete(chunk, values)...
    results = plan.results

Not handled: an item that alone is over the bytes limit cannot be split (that would change its tokens);
it raises `LimitExceededError` naming the item before anything is sent.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tokend_api import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_REQUEST_BYTES, MAX_BATCH_ITEMS, MAX_CHUNKS, MAX_REQUEST_BYTES

from ._exceptions import LimitExceededError

# Below this many input bytes a request is not worth splitting further for parallelism: a round trip
# costs more than tokenizing 64 KiB (about 1 ms on one core), so smaller pieces only add overhead.
MIN_PARALLEL_REQUEST_BYTES = 64 * 1024



class RequestLimits:
    """The per-request limits one client obeys; thread-safe, lowered as servers report smaller ones.

        limits = RequestLimits(max_items=1024, max_bytes=8 << 20)
        limits.lower(max_items=100)
    """

    def __init__(self, max_items: int = DEFAULT_MAX_BATCH_ITEMS, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        if max_items < 1:
            raise ValueError(f"max_batch_items must be at least 1, got {max_items}")
        if max_bytes < 1:
            raise ValueError(f"max_request_bytes must be at least 1, got {max_bytes}")
        self._lock = threading.Lock()
        self.max_items = max_items
        self.max_bytes = max_bytes

    def lower(self, *, max_items: int | None = None, max_bytes: int | None = None) -> None:
        """Adopt smaller limits (never raises them: another server behind the target may be stricter)."""
        with self._lock:
            if max_items is not None and max_items >= 1:
                self.max_items = min(self.max_items, max_items)
            if max_bytes is not None and max_bytes >= 1:
                self.max_bytes = min(self.max_bytes, max_bytes)

    def __repr__(self) -> str:
        return f"RequestLimits(max_items={self.max_items}, max_bytes={self.max_bytes})"


@dataclass(frozen=True)
class Chunk:
    """Items `start:stop` of the batch, sent as one request."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def split_batch(
    sizes: Sequence[int], *, max_items: int, max_bytes: int, start: int = 0, stop: int | None = None,
    parallelism: int = 1,
) -> list[Chunk]:
    """Cut `sizes[start:stop]` into consecutive chunks under both limits, at least `parallelism` of them
    when each would still carry `MIN_PARALLEL_REQUEST_BYTES`.

        split_batch([10, 10, 10], max_items=2, max_bytes=100)  # [Chunk(0, 2), Chunk(2, 3)]
    """
    stop = len(sizes) if stop is None else stop
    total = sum(sizes[start:stop])
    for index in range(start, stop):
        if sizes[index] > max_bytes:
            raise LimitExceededError(
                f"item {index} is {sizes[index]} bytes, over the server's limit of {max_bytes} bytes per "
                "request (max_request_bytes); one text cannot be split without changing its tokens: "
                "split it at a natural boundary yourself or raise the server's --max-request-bytes",
                item=index,
                limit=max_bytes,
            )
    # Spread big batches over several requests so several workers work on them at once.
    target_bytes = max_bytes
    if parallelism > 1 and total >= 2 * MIN_PARALLEL_REQUEST_BYTES:
        target_bytes = min(max_bytes, max(MIN_PARALLEL_REQUEST_BYTES, -(-total // parallelism)))
    chunks: list[Chunk] = []
    chunk_start, chunk_bytes = start, 0
    for index in range(start, stop):
        size = sizes[index]
        if index > chunk_start and (index - chunk_start >= max_items or chunk_bytes + size > target_bytes):
            chunks.append(Chunk(chunk_start, index))
            chunk_start, chunk_bytes = index, 0
        chunk_bytes += size
    if stop > chunk_start:
        chunks.append(Chunk(chunk_start, stop))
    return chunks


class BatchPlan:
    """The state of one batched call: chunks still to send, and the results gathered so far (in order).

    Drivers (sync and async) take chunks, send them, and report back with `complete` or `too_large`.
    """

    def __init__(self, sizes: Sequence[int], limits: RequestLimits, *, parallelism: int = 1) -> None:
        self._sizes = sizes
        self._limits = limits
        self._parallelism = parallelism
        self.results: list[Any] = [None] * len(sizes)
        self._pending: deque[Chunk] = deque(
            split_batch(sizes, max_items=limits.max_items, max_bytes=limits.max_bytes, parallelism=parallelism)
        )
        self._in_flight = 0
        self._resends: dict[Chunk, int] = {}  # chunk -> times resent after losing its server

    @property
    def done(self) -> bool:
        return not self._pending and self._in_flight == 0

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def pending(self) -> int:
        """Chunks not sent yet (or queued again)."""
        return len(self._pending)

    def take(self) -> Chunk | None:
        """The next chunk to send, or None when all are sent (or in flight)."""
        if not self._pending:
            return None
        self._in_flight += 1
        return self._pending.popleft()

    def complete(self, chunk: Chunk, values: Sequence[Any]) -> None:
        """Record a chunk's answers; `values` has one entry per item of the chunk."""
        self._in_flight -= 1
        self.results[chunk.start : chunk.stop] = values

    def resend(self, chunk: Chunk, budget: int) -> bool:
        """Queue `chunk` again (its server went away mid-call) unless it was resent `budget` times already."""
        self._in_flight -= 1
        attempts = self._resends.get(chunk, 0)
        if attempts >= budget:
            return False
        self._resends[chunk] = attempts + 1
        self._pending.appendleft(chunk)
        return True

    def abandon(self, chunk: Chunk) -> None:
        """A chunk failed for good; it no longer counts as in flight."""
        self._in_flight -= 1

    def too_large(self, chunk: Chunk, reported: tuple[str, int] | None) -> bool:
        """The server refused `chunk` with RESOURCE_EXHAUSTED: learn the limit, re-split, and queue the parts.

        `reported` is the limit the server named, e.g. `("max_batch_items", 1024)`, or None.
        Returns False when the chunk is a single item (nothing left to split: the caller raises).
        """
        self._in_flight -= 1
        chunk_bytes = sum(self._sizes[chunk.start : chunk.stop])
        if reported is not None and reported[0] == MAX_BATCH_ITEMS:
            self._limits.lower(max_items=min(reported[1], len(chunk) - 1))
        elif reported is not None and reported[0] == MAX_REQUEST_BYTES:
            # A named limit is worth keeping even when this chunk is one item: the next batch splits right.
            self._limits.lower(max_bytes=min(reported[1], chunk_bytes - 1))
        elif reported is not None and reported[0] == MAX_CHUNKS:
            pass  # chunks per request (Chunk): fewer texts per request helps, smaller limits for every call do not
        elif len(chunk) > 1:
            # No limit named (e.g. gRPC's own message-size check): halve what we sent, by items and bytes.
            # Never below the largest item: that one may well pass alone.
            largest = max(self._sizes[chunk.start : chunk.stop])
            self._limits.lower(max_items=max(1, len(chunk) // 2), max_bytes=max(1, largest, chunk_bytes // 2))
        if len(chunk) <= 1:
            return False
        parts = split_batch(
            self._sizes, max_items=self._limits.max_items, max_bytes=self._limits.max_bytes,
            start=chunk.start, stop=chunk.stop,
        )
        if len(parts) == 1:  # the learned limit was not smaller than this chunk: halve it anyway
            middle = chunk.start + len(chunk) // 2
            parts = [Chunk(chunk.start, middle), Chunk(middle, chunk.stop)]
        self._pending.extendleft(reversed(parts))
        return True
