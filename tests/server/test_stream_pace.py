"""A DecodeStream's messages are read at most ``--stream-message-rate`` a second on average, after a first
second's worth at once (tokend.server.stream_pace): a stream within the rate is never held back, a faster one
is read later (the client's sends wait on flow control), and the pace is kept, not forgiven, when a sleep ends
early. The clock is a fake one: no test here waits."""

from __future__ import annotations

import pytest

from tokend.server.stream_pace import PacedRequests


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _paced(rate: float, clock: _Clock, count: int = 100_000) -> PacedRequests:
    return PacedRequests(iter(range(count)), rate, clock=clock, sleep=clock.sleep)


def test_a_stream_within_the_rate_is_never_held_back():
    clock = _Clock()
    paced = _paced(1000.0, clock)
    for expected in range(5000):  # 5 s of messages, each 1.1 ms after the one before (909 a second)
        assert next(paced) == expected
        clock.now += 0.0011
    assert clock.slept == [] and paced.waited == 0.0


def test_a_paused_client_may_catch_up_with_one_seconds_worth_at_once():
    clock = _Clock()
    paced = _paced(1000.0, clock)
    for _ in range(1000):
        next(paced)
    assert clock.slept == []
    clock.now += 2.0  # a pause refills the bucket, to one second's worth and no more
    for _ in range(1000):
        next(paced)
    assert clock.slept == []
    next(paced)
    assert clock.slept != []


def test_a_flood_is_read_at_the_rate_in_steps_of_a_few_messages():
    clock = _Clock()
    paced = _paced(1000.0, clock)
    started = clock.now
    for _ in range(11_000):  # as fast as it can: no time passes between messages but the sleeps
        next(paced)
    # the first 1,000 at once, then 10,000 at 1,000 a second
    assert 10.0 - 0.03 <= clock.now - started <= 10.0 + 0.03
    # held back a step of 20 ms (20 messages) at a time, not woken once a message
    assert len(clock.slept) <= 10_000 / 20 + 1
    assert paced.waited == pytest.approx(clock.now - started)


def test_a_sleep_that_ends_early_is_not_forgiven():
    clock = _Clock()
    paced = PacedRequests(iter(range(100_000)), 100.0, clock=clock, sleep=lambda seconds: clock.sleep(seconds * 0.5))
    started = clock.now
    for _ in range(1100):
        next(paced)
    assert clock.now - started >= 10.0 - 0.2  # 1,000 messages past the first 100, at 100 a second


def test_the_end_of_the_stream_and_its_errors_pass_through():
    clock = _Clock()
    paced = _paced(5.0, clock, count=2)
    assert list(paced) == [0, 1]
