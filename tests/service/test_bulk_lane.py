"""The bulk lane (tokend.service.bulk_lane): large requests' work on threads at the lowest CPU priority.

Driven with events, never timing: which thread runs the work and at what priority, what crosses to it
(result, exception, the call's record), what is refused when the lane is full, and that queued work whose
caller has gone or run out of time never starts.
"""

from __future__ import annotations

import os
import threading

import pytest

from support.call_state import FakeCall as _Call
from tokend.service import CallCancelled, DeadlineExpired, ServiceUnavailable, recording
from tokend.service.bulk_lane import BulkLane, lower_priority


def _priority() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.fixture
def lane():
    lanes = []

    def make(**options) -> BulkLane:
        lanes.append(BulkLane(**options))
        return lanes[-1]

    yield make
    for each in lanes:
        each.close()


def _block(lane: BulkLane) -> threading.Event:
    """Occupy one lane thread until the returned event is set."""
    release, started = threading.Event(), threading.Event()
    threading.Thread(target=lane.run, args=(lambda: (started.set(), release.wait()),), kwargs={"call": None},
                     daemon=True).start()  # fmt: skip
    assert started.wait(10)
    return release


def _submit(lane: BulkLane, fn, call) -> list:
    """Run ``fn`` on the lane from another thread; the list gets its result or exception."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append(lane.run(fn, call=call))
        except Exception as exc:  # recorded for the test to assert on
            outcome.append(exc)

    threading.Thread(target=run, daemon=True).start()
    return outcome


def _wait_until(predicate) -> None:
    pause = threading.Event()
    for _ in range(1000):
        if predicate():
            return
        pause.wait(0.01)
    raise AssertionError("condition never held")


def test_work_runs_on_another_thread_at_the_lowest_priority(lane):
    caller = (threading.get_native_id(), _priority())
    where = lane().run(lambda: (threading.get_native_id(), _priority()), call=None)
    assert where[0] != caller[0] and where[1] == 19
    assert _priority() == caller[1]  # the caller's own priority is untouched


def test_work_on_small_items_stays_on_the_calling_thread(lane):
    bulk = lane(min_bytes=1000)
    assert bulk.run(threading.get_native_id, call=None, size=999) == threading.get_native_id()
    assert bulk.run(threading.get_native_id, call=None, size=1000) != threading.get_native_id()


def test_the_idle_policy_puts_the_threads_in_sched_idle(lane):
    assert lane(idle=True).run(lambda: os.sched_getscheduler(0), call=None) == os.SCHED_IDLE


def test_results_errors_and_the_calls_record_cross_to_the_lane(lane):
    bulk = lane()
    error = ValueError("from the lane")

    def fail() -> None:
        raise error

    with pytest.raises(ValueError) as raised:
        bulk.run(fail, call=None)
    assert raised.value is error
    with recording() as record:
        bulk.run(lambda: setattr(_current(), "tokens", 7), call=None)
    assert record.tokens == 7


def _current():
    from tokend.service import current_record

    return current_record()


def test_work_submitted_from_the_lane_runs_there_at_once(lane):
    bulk = lane(threads=1)
    assert bulk.run(lambda: bulk.run(lambda: threading.get_native_id(), call=None) == threading.get_native_id(),
                    call=None) is True  # fmt: skip


def test_a_full_lane_is_unavailable(lane):
    bulk = lane(threads=1, max_queued=1)
    release = _block(bulk)
    queued = _submit(bulk, lambda: "queued", call=None)
    _wait_until(lambda: bulk.queued == 1)
    with pytest.raises(ServiceUnavailable, match="busy with large requests"):
        bulk.run(lambda: "refused", call=None)
    release.set()
    _wait_until(lambda: queued)
    assert queued == ["queued"]


@pytest.mark.parametrize("call,error", [(_Call(active=False), CallCancelled), (_Call(remaining=0.0), DeadlineExpired)])
def test_queued_work_whose_caller_cannot_use_it_never_starts(lane, call, error):
    bulk = lane(threads=1)
    release = _block(bulk)
    ran = []
    waiting = _Call()
    outcome = _submit(bulk, lambda: ran.append(1), call=waiting)
    _wait_until(lambda: bulk.queued == 1)
    waiting.remaining, waiting.active = call.remaining, call.active
    _wait_until(lambda: outcome)
    assert isinstance(outcome[0], error) and bulk.queued == 0
    release.set()
    assert bulk.run(lambda: "next", call=None) == "next" and ran == []


def test_started_work_is_waited_for_even_when_the_caller_goes(lane):
    # Its own checks (the batch loop's) stop it; the call ends after its work, so its memory is given back then.
    bulk = lane(threads=1)
    started, finish, call = threading.Event(), threading.Event(), _Call()
    outcome = _submit(bulk, lambda: (started.set(), finish.wait(10), "done")[-1], call=call)
    assert started.wait(10)
    call.active = False
    threading.Event().wait(0.2)
    assert outcome == []
    finish.set()
    _wait_until(lambda: outcome)
    assert outcome == ["done"]


def test_lowering_is_for_good_and_per_thread():
    outcome = []

    def run() -> None:
        outcome.append(lower_priority(19))
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 0)
            outcome.append("raised back")
        except PermissionError:
            outcome.append("stays low")

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert outcome[0] is True and _priority() != 19
    if os.geteuid() != 0:  # root may raise it back; nobody in a pod does
        assert outcome[1] == "stays low"
