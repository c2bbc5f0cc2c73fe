"""The records of calls still running when their worker ends (running_calls.py), in-process: the metrics and
logging interceptors write each such call once, with the status its client sees, and its handler, returning
after, writes nothing more. The real worker: tests/server/test_drain_records.py."""

from __future__ import annotations

import logging
import threading

import grpc
from prometheus_client import CollectorRegistry

from support.servicer_context import FakeContext
from tokend.server.call_outcome import CallOutcome
from tokend.server.interceptor_chain import InterceptorChain
from tokend.server.logging_interceptor import LoggingInterceptor
from tokend.server.metrics import ServerMetrics
from tokend.server.metrics_interceptor import MetricsInterceptor
from tokend.server.running_calls import RunningCalls, cut_status
from tokend.server.unsent_answers import SendDeadlines

LABELS = ("tokend.v1.Tokenizer", "CountTokens")


class _EndedContext(FakeContext):
    """A call that its client ended (cancel or deadline) while its handler still ran."""

    def __init__(self, remaining: float) -> None:
        super().__init__()
        self.remaining = remaining

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float:
        return self.remaining


def _chain(metrics: ServerMetrics, method: str, handler: grpc.RpcMethodHandler):
    records = MetricsInterceptor(metrics), LoggingInterceptor()
    details = type("Details", (), {"method": f"/tokend.v1.Tokenizer/{method}"})()
    return records, InterceptorChain(list(records)).intercept_service(lambda _details: handler, details)


def _handled(metrics: ServerMetrics, grpc_type: str, method: str) -> dict[str, float]:
    counts = {code.name: metrics.handled.labels(grpc_type, "tokend.v1.Tokenizer", method, code.name)._value.get()
              for code in grpc.StatusCode}  # fmt: skip
    return {code: value for code, value in counts.items() if value}


def test_a_call_cut_while_its_handler_runs_is_recorded_once_unavailable(caplog):
    """Before: a worker ending under a running handler wrote neither its handled count nor its log line."""
    metrics = ServerMetrics(CollectorRegistry())
    release, running = threading.Event(), threading.Event()

    def count(request, context):
        running.set()
        release.wait(10)
        return b"answer"

    (metrics_records, log_records), handler = _chain(metrics, "CountTokens", grpc.unary_unary_rpc_method_handler(count))
    caller = threading.Thread(target=handler.unary_unary, args=(b"", FakeContext()))
    with caplog.at_level(logging.DEBUG, logger="tokend.server.rpc"):
        caller.start()
        assert running.wait(10)
        assert (metrics_records.write_cut(), log_records.write_cut()) == (1, 1)
        assert _handled(metrics, "unary", "CountTokens") == {"UNAVAILABLE": 1}
        release.set()  # the handler returns after the cut (the worker is ending)
        caller.join(10)
        assert (metrics_records.write_cut(), log_records.write_cut()) == (0, 0)
    assert _handled(metrics, "unary", "CountTokens") == {"UNAVAILABLE": 1}  # not OK as well
    assert metrics.started.labels("unary", *LABELS)._value.get() == 1
    lines = [(record.msg, record.fields["code"]) for record in caplog.records if record.name == "tokend.server.rpc"]
    assert lines == [("rpc_error", "UNAVAILABLE")], lines


def test_a_stream_cut_while_it_runs_is_recorded_once_and_a_finished_one_is_not_cut():
    metrics = ServerMetrics(CollectorRegistry())
    release, running = threading.Event(), threading.Event()

    def chunks(request, context):
        yield b"first"
        running.set()
        release.wait(10)
        yield b"second"

    stream = grpc.unary_stream_rpc_method_handler(chunks)
    (metrics_records, log_records), handler = _chain(metrics, "ChunkStream", stream)
    release.set()
    assert list(handler.unary_stream(b"", FakeContext())) == [b"first", b"second"]  # ended before the cut
    release.clear()
    running.clear()
    answers: list[bytes] = []
    caller = threading.Thread(target=lambda: answers.extend(handler.unary_stream(b"", FakeContext())))
    caller.start()
    assert running.wait(10)
    assert (metrics_records.write_cut(), log_records.write_cut()) == (1, 1)
    release.set()
    caller.join(10)
    assert answers == [b"first", b"second"]
    assert _handled(metrics, "server_stream", "ChunkStream") == {"OK": 1, "UNAVAILABLE": 1}


def test_a_call_its_client_ended_before_the_cut_reads_as_its_client_saw_it():
    assert cut_status(FakeContext()) is grpc.StatusCode.UNAVAILABLE  # no is_active: the connection closes
    assert cut_status(_EndedContext(remaining=12.0)) is grpc.StatusCode.CANCELLED
    assert cut_status(_EndedContext(remaining=0.0)) is grpc.StatusCode.DEADLINE_EXCEEDED


def test_running_calls_hands_each_entry_to_one_side():
    running = RunningCalls()
    left, cut = FakeContext(), FakeContext()
    running[left] = ("left",)
    running[cut] = ("cut",)
    assert running.pop(left, None) == ("left",)
    assert running.cut() == [(cut, ("cut",))]
    assert running.pop(cut, None) is None and not running


def test_a_call_answered_after_the_worker_abandoned_its_unsent_answers_is_told_unavailable_at_once():
    """A handler that returns between the cut and the process' end registers its watched answer after
    ``abandon``: without the flag, its records would wait for an end the worker never sees."""
    deadlines = SendDeadlines()
    assert deadlines.abandon() == 0
    outcome, statuses = CallOutcome(), []
    outcome.then(lambda status, _ended: statuses.append(status))
    ran = []
    assert deadlines.end_after(FakeContext(), 30.0, outcome=outcome)(lambda: ran.append(1)) is False
    assert statuses == [grpc.StatusCode.UNAVAILABLE]
