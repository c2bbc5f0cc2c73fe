"""The benchmark's load generator (bench/loadgen.py) measures what it claims: an open loop sends the
offered number of requests and counts a backlog as latency (no coordinated omission); results count
errors by code. No server: ``send`` is a local coroutine. Only lower bounds on time are asserted
(a sleep lasts at least its length), never upper ones.
"""

from __future__ import annotations

import asyncio
import time

from bench.loadgen import Outcome, percentile, run_closed_loop, run_open_loop


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.999) == 100.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_open_loop_sends_the_offered_requests_and_counts_codes() -> None:
    async def send(index: int) -> Outcome:
        return Outcome("OK", tokens=2, input_bytes=10) if index % 5 else Outcome("UNAVAILABLE")

    result = asyncio.run(run_open_loop(send, rate=200, duration=0.25))
    assert result.sent == 50
    assert result.codes == {"OK": 40, "UNAVAILABLE": 10}
    assert result.errors == 10 and result.tokens == 80 and result.input_bytes == 400
    assert len(result.latencies_s) == 40  # successful requests only
    assert result.error_summary() == "UNAVAILABLE ×10"


def test_open_loop_latency_counts_from_the_scheduled_time() -> None:
    # Request 0 blocks the whole event loop for 0.2 s (as a saturated generator would); requests
    # scheduled during that time could not be sent on time, and their latency must include the wait.
    async def send(index: int) -> Outcome:
        if index == 0:
            time.sleep(0.2)
        return Outcome()

    result = asyncio.run(run_open_loop(send, rate=100, duration=0.1))  # 10 requests, 10 ms apart
    assert result.sent == 10
    assert result.max_lag_s >= 0.1
    # The request scheduled at 10 ms went out after 200 ms: at least 150 ms of latency, not ~0.
    assert sorted(result.latencies_s)[-2] >= 0.15


def test_closed_loop_keeps_the_concurrency_and_stops_at_max_requests() -> None:
    running = 0
    peak = 0

    async def send(index: int) -> Outcome:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return Outcome(tokens=1)

    result = asyncio.run(run_closed_loop(send, concurrency=4, duration=60, max_requests=40))
    assert result.sent == 40 and result.tokens == 40
    assert peak == 4


def test_a_failing_send_is_counted_not_raised() -> None:
    async def send(index: int) -> Outcome:
        raise ConnectionResetError("peer went away")

    result = asyncio.run(run_open_loop(send, rate=100, duration=0.05))
    assert result.ok == 0 and result.codes == {"client ConnectionResetError": 5}
