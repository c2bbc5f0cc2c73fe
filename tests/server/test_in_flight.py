"""InFlightCalls, the count a draining worker waits on and reports as ``calls_cut``: calls that arrive
once draining began are refused and must be neither waited for nor reported as cut (a refusal being
answered when the worker ended made tests/reliability/test_sigterm.py fail with ``calls_cut: 1``)."""

from __future__ import annotations

import threading

import pytest

from tokend.server.availability import Availability
from tokend.server.availability_interceptor import AvailabilityInterceptor
from tokend.server.in_flight import InFlightCalls
from tokend.service.errors import ServiceUnavailable
from tokend.server.unary_interceptor import MethodName

ENCODE = MethodName.parse("/tokend.v1.Tokenizer/Encode", "unary")
CHUNKS = MethodName.parse("/tokend.v1.Tokenizer/ChunkStream", "server_stream")


def _blocking_call(calls: InFlightCalls, release: threading.Event, method: MethodName = ENCODE) -> tuple[threading.Thread, list[object]]:
    started = threading.Event()

    def behaviour(request, context):
        started.set()
        release.wait(10)
        return "answer"

    def streaming(request, context):
        started.set()
        release.wait(10)
        yield "chunk"

    answers: list[object] = []

    def run() -> None:
        if method.grpc_type == "unary":
            answers.append(calls.handle(method, behaviour, None, None))
        else:
            answers.append(list(calls.handle_stream(method, streaming, None, None)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5)
    return thread, answers


def test_calls_admitted_before_draining_are_waited_for_and_later_ones_are_not() -> None:
    for method in (ENCODE, CHUNKS):
        calls = InFlightCalls()
        release_old, release_new = threading.Event(), threading.Event()
        old, old_answers = _blocking_call(calls, release_old, method)
        assert calls.count == 1
        calls.stop_counting()
        new, new_answers = _blocking_call(calls, release_new, method)  # a refusal still being answered
        assert calls.count == 1
        assert not calls.wait_idle(0.05)
        release_old.set()
        old.join(5)
        assert calls.wait_idle(1.0), "the drain waited on a call that arrived after it began"
        assert calls.count == 0, "a refusal in progress was reported as a cut call"
        release_new.set()
        new.join(5)
        assert calls.count == 0
        expected = "answer" if method.grpc_type == "unary" else ["chunk"]
        assert old_answers == [expected] and new_answers == [expected], "a counted call lost its answer"


def test_a_call_admitted_before_draining_that_outlives_the_grace_period_is_counted_as_cut() -> None:
    calls = InFlightCalls()
    release = threading.Event()
    thread, answers = _blocking_call(calls, release)
    calls.stop_counting()
    assert not calls.wait_idle(0.05)
    assert calls.count == 1
    release.set()
    thread.join(5)
    assert calls.count == 0 and answers == ["answer"]


def test_the_gate_admits_a_call_that_entered_before_draining_even_if_draining_begins_before_it_reaches_the_gate() -> None:
    """The chain runs metrics and logging (and, under load, waits for the GIL) between InFlightCalls and the
    gate: a call already counted in flight when SIGTERM arrives must be answered, not refused (seen once in
    tests/reliability/test_sigterm.py: UNAVAILABLE for a call that showed in tokend_rpc_in_flight)."""
    for method in (ENCODE, CHUNKS):
        availability = Availability()
        availability.serving()
        calls = InFlightCalls()
        gate = AvailabilityInterceptor(availability, calls)
        reached_window, drained = threading.Event(), threading.Event()

        def servicer(request, context):
            return "answer"

        def servicer_stream(request, context):
            yield "chunk"

        def between(request, context):  # what sits between the two interceptors
            reached_window.set()
            assert drained.wait(5)
            if method.grpc_type == "unary":
                return gate.handle(method, servicer, request, context)
            return list(gate.handle_stream(method, servicer_stream, request, context))

        answers: list[object] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                if method.grpc_type == "unary":
                    answers.append(calls.handle(method, between, None, None))
                else:
                    answers.append(list(calls.handle_stream(method, lambda r, c: iter([between(r, c)]), None, None)))
            except BaseException as error:  # noqa: BLE001 - the test reports it
                errors.append(error)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert reached_window.wait(5)
        availability.draining()  # the worker's drain: the gate first, then the count (tokend.server.worker)
        calls.stop_counting()
        drained.set()
        thread.join(5)
        assert errors == [], f"{method.method}: a call in flight before draining was refused: {errors}"
        assert answers and calls.count == 0

        # A call that enters after draining began is refused, in this thread as in any other.
        with pytest.raises(ServiceUnavailable, match="shutting down"):
            calls.handle(ENCODE, lambda r, c: gate.handle(ENCODE, servicer, r, c), None, None)


def test_the_gate_refuses_counted_calls_while_starting() -> None:
    availability = Availability()
    calls = InFlightCalls()
    gate = AvailabilityInterceptor(availability, calls)
    with pytest.raises(ServiceUnavailable, match="still loading"):
        calls.handle(ENCODE, lambda r, c: gate.handle(ENCODE, lambda r2, c2: "answer", r, c), None, None)


def test_a_drain_waiting_for_the_count_wakes_when_the_last_call_ends() -> None:
    # The last call's end wakes a waiting drain (only threads in wait_idle are notified: none on most calls).
    calls = InFlightCalls()
    release = threading.Event()
    thread, answers = _blocking_call(calls, release)
    calls.stop_counting()
    waited: list[bool] = []
    waiting = threading.Thread(target=lambda: waited.append(calls.wait_idle(600)), daemon=True)
    waiting.start()
    while not calls._waiting:  # the drain is waiting (its Condition is held until the wait begins)
        threading.Event().wait(0.001)
    release.set()
    thread.join(5)
    waiting.join(300)  # a lost wake-up would hold it the whole 600 s
    assert waited == [True] and calls.count == 0 and answers == ["answer"]
