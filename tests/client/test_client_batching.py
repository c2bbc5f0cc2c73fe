"""Splitting batches under request limits, re-splitting on RESOURCE_EXHAUSTED, reassembly in order."""

from __future__ import annotations

import pytest

from tokend_client import LimitExceededError
from tokend_client._batching import (
    MIN_PARALLEL_REQUEST_BYTES,
    BatchPlan,
    Chunk,
    RequestLimits,
    split_batch,
)


def _covers(chunks, n):
    """Chunks are consecutive, non-empty and cover 0..n exactly once."""
    position = 0
    for chunk in chunks:
        assert chunk.start == position and chunk.stop > chunk.start
        position = chunk.stop
    return position == n


def test_split_by_items():
    chunks = split_batch([1] * 10, max_items=4, max_bytes=1000)
    assert chunks == [Chunk(0, 4), Chunk(4, 8), Chunk(8, 10)]


def test_split_by_bytes_never_exceeds_the_limit():
    sizes = [3, 3, 3, 5, 1, 9, 1]
    chunks = split_batch(sizes, max_items=100, max_bytes=9)
    assert _covers(chunks, len(sizes))
    assert all(sum(sizes[c.start : c.stop]) <= 9 for c in chunks)
    assert chunks == [Chunk(0, 3), Chunk(3, 5), Chunk(5, 6), Chunk(6, 7)]


def test_empty_items_and_empty_batch():
    assert split_batch([], max_items=2, max_bytes=10) == []
    assert split_batch([0, 0, 0], max_items=2, max_bytes=10) == [Chunk(0, 2), Chunk(2, 3)]


def test_an_item_over_the_byte_limit_is_named_before_sending():
    with pytest.raises(LimitExceededError, match="item 2 is 11 bytes") as caught:
        split_batch([1, 1, 11], max_items=10, max_bytes=10)
    assert (caught.value.item, caught.value.limit) == (2, 10)


def test_big_batches_are_spread_for_parallelism_small_ones_are_not():
    big = [1024] * 1000  # 1000 KiB
    chunks = split_batch(big, max_items=1024, max_bytes=8 << 20, parallelism=4)
    assert len(chunks) == 4 and _covers(chunks, 1000)
    small = [10] * 100
    assert split_batch(small, max_items=1024, max_bytes=8 << 20, parallelism=4) == [Chunk(0, 100)]
    # never below the minimum useful request size
    medium = [1024] * 200  # 200 KiB over 8 connections would be 25 KiB each
    chunks = split_batch(medium, max_items=1024, max_bytes=8 << 20, parallelism=8)
    assert all(sum(medium[c.start : c.stop]) >= MIN_PARALLEL_REQUEST_BYTES for c in chunks[:-1])


def _drive(plan, answer):
    """Run a plan to completion; `answer(chunk)` returns values or a reported limit to refuse it."""
    sent = []
    while not plan.done:
        chunk = plan.take()
        sent.append(chunk)
        outcome = answer(chunk)
        if isinstance(outcome, tuple):
            assert plan.too_large(chunk, outcome)
        else:
            plan.complete(chunk, outcome)
    return sent


def test_results_come_back_in_order_even_when_answered_out_of_order():
    limits = RequestLimits(max_items=3, max_bytes=100)
    plan = BatchPlan([1] * 8, limits)
    taken = [plan.take(), plan.take(), plan.take()]
    assert plan.take() is None and plan.in_flight == 3
    for chunk in reversed(taken):
        plan.complete(chunk, [f"r{i}" for i in range(chunk.start, chunk.stop)])
    assert plan.done
    assert plan.results == [f"r{i}" for i in range(8)]


def test_a_reported_item_limit_is_learned_and_the_chunk_resplit():
    limits = RequestLimits(max_items=1024, max_bytes=1 << 20)
    server_limit = 5

    def answer(chunk):
        if len(chunk) > server_limit:
            return ("max_batch_items", server_limit)
        return list(range(chunk.start, chunk.stop))

    plan = BatchPlan([1] * 23, limits)
    sent = _drive(plan, answer)
    assert plan.results == list(range(23))
    assert limits.max_items == 5
    assert sent[0] == Chunk(0, 23) and all(len(c) <= 5 for c in sent[1:])
    # the next batch on the same limits is split right away
    assert split_batch([1] * 12, max_items=limits.max_items, max_bytes=limits.max_bytes) == [
        Chunk(0, 5), Chunk(5, 10), Chunk(10, 12)
    ]


def test_a_reported_byte_limit_is_learned():
    limits = RequestLimits()
    sizes = [100] * 10

    def answer(chunk):
        if sum(sizes[chunk.start : chunk.stop]) > 250:
            return ("max_request_bytes", 250)
        return [chunk.start] * len(chunk)

    plan = BatchPlan(sizes, limits)
    _drive(plan, answer)
    assert limits.max_bytes == 250
    assert plan.results == [0, 0, 2, 2, 4, 4, 6, 6, 8, 8]


def test_an_unnamed_limit_halves_the_request_until_it_passes():
    limits = RequestLimits()
    sizes = [10] * 16

    def answer(chunk):
        # gRPC's own message-size refusal names no tokend limit
        return ("max_message_bytes", 0) if len(chunk) > 3 else ["ok"] * len(chunk)

    plan = BatchPlan(sizes, limits)
    _drive(plan, answer)
    assert plan.results == ["ok"] * 16
    assert limits.max_items <= 3


def test_halving_never_goes_below_the_largest_item():
    limits = RequestLimits()
    plan = BatchPlan([900, 10], limits)
    chunk = plan.take()
    assert plan.too_large(chunk, None)
    assert limits.max_bytes >= 900
    assert [plan.take(), plan.take()] == [Chunk(0, 1), Chunk(1, 2)]


def test_a_single_item_refused_cannot_be_split_but_the_limit_is_kept():
    limits = RequestLimits()
    plan = BatchPlan([5], limits)
    chunk = plan.take()
    assert plan.too_large(chunk, ("max_request_bytes", 4)) is False
    assert plan.done
    assert limits.max_bytes == 4
    plan = BatchPlan([5], limits := RequestLimits())
    assert plan.too_large(plan.take(), None) is False
    assert (limits.max_items, limits.max_bytes) == (RequestLimits().max_items, RequestLimits().max_bytes)


def test_resend_is_bounded_by_the_budget():
    plan = BatchPlan([1, 1], RequestLimits(max_items=1))
    first = plan.take()
    assert plan.resend(first, budget=2) and plan.take() == first
    assert plan.resend(first, budget=2) and plan.take() == first
    assert plan.resend(first, budget=2) is False


def test_limits_are_validated_and_only_lowered():
    with pytest.raises(ValueError, match="max_batch_items"):
        RequestLimits(max_items=0)
    limits = RequestLimits(max_items=10, max_bytes=10)
    limits.lower(max_items=20, max_bytes=5)
    assert (limits.max_items, limits.max_bytes) == (10, 5)
