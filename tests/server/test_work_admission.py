"""Issue 13 item 6: large requests reserve their working memory before any work, small ones never wait.

The gate itself (tokend.service.admission.WorkAdmission) is driven deterministically here, with events
rather than timing: what waits, in which order, what is refused and when. Then a real worker, sent eight
2 MiB single-piece Encodes at once under a 64 MiB budget: its peak RSS stays near one request's (before
the gate, all eight merged at once), every answer is tiktoken's (those beyond one running and four waiting
got UNAVAILABLE and retried), and its RSS goes back down afterwards (malloc_trim once the last large
request ended).
"""

from __future__ import annotations

import random
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import tiktoken
from tokend_api.v1 import tokenizer_pb2 as pb

from support.call_state import FakeCall as _Call
from support.manual_clock import ManualClock
from support.servicer_context import FakeContext
from support.server import start_server
from tokend.registry import Registry
from tokend.service import (
    CallCancelled,
    DeadlineExpired,
    ServedModels,
    ServiceUnavailable,
    TokenizerService,
    WorkAdmission,
    recording,
    working_bytes,
)
from tokend.service.admission import TRIM_AFTER_ANSWER_BYTES

MiB = 1 << 20


def _waiter(admission: WorkAdmission, size: int, call=None) -> tuple[threading.Thread, threading.Event, list]:
    """A thread that reserves ``size`` and sets the event once it holds it; outcome[0] is release or the error."""
    admitted, outcome = threading.Event(), []

    def run() -> None:
        try:
            outcome.append(admission.reserve(size, call=call))
            admitted.set()
        except Exception as exc:  # recorded for the test to assert on
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, admitted, outcome


def _wait_until(predicate, timeout: float = 10.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition never held")


def test_small_requests_pass_while_large_ones_hold_the_budget():
    admission = WorkAdmission(100 * MiB, small_bytes=4 * MiB)
    first = admission.reserve(90 * MiB, call=None)
    for _ in range(1000):  # the small lane: never counted, never waits
        admission.reserve(4 * MiB, call=None)()
    _, admitted, _ = _waiter(admission, 20 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    assert not admitted.is_set() and admission.held_bytes == 90 * MiB
    first()
    assert admitted.wait(10) and admission.held_bytes == 20 * MiB


def test_large_requests_are_admitted_in_arrival_order():
    admission = WorkAdmission(100 * MiB, small_bytes=0)
    holder = admission.reserve(60 * MiB, call=None)
    _, big_admitted, big = _waiter(admission, 80 * MiB)  # first in line: does not fit yet
    _wait_until(lambda: admission.waiting == 1)
    _, medium_admitted, medium = _waiter(admission, 30 * MiB)  # would fit now, but waits its turn
    _wait_until(lambda: admission.waiting == 2)
    assert not medium_admitted.is_set()
    holder()
    assert big_admitted.wait(10)
    assert not medium_admitted.is_set()  # 80 + 30 > 100
    big[0]()
    assert medium_admitted.wait(10)
    medium[0]()
    assert admission.held_bytes == 0 and admission.running == 0


def test_a_request_larger_than_the_budget_runs_alone():
    admission = WorkAdmission(100 * MiB, small_bytes=0)
    other = admission.reserve(10 * MiB, call=None)
    _, admitted, huge = _waiter(admission, 500 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    assert not admitted.is_set()
    other()
    assert admitted.wait(10) and admission.held_bytes == 100 * MiB
    huge[0]()


def test_too_many_waiting_is_unavailable_and_a_dead_caller_stops_waiting():
    admission = WorkAdmission(100 * MiB, small_bytes=0, max_waiting=2)
    holder = admission.reserve(100 * MiB, call=None)
    waiters = [_waiter(admission, 50 * MiB) for _ in range(2)]
    _wait_until(lambda: admission.waiting == 2)
    with pytest.raises(ServiceUnavailable, match="busy with large requests"):
        admission.reserve(50 * MiB, call=None)
    expired, cancelled = _Call(remaining=0.0), _Call(active=False)
    holder()
    for _, admitted, outcome in waiters:
        assert admitted.wait(10)
        outcome[0]()
    blocker = admission.reserve(100 * MiB, call=None)
    with pytest.raises(DeadlineExpired, match="while waiting"):
        admission.reserve(50 * MiB, call=expired)
    with pytest.raises(CallCancelled):
        admission.reserve(50 * MiB, call=cancelled)
    slow = WorkAdmission(100 * MiB, small_bytes=0, max_wait_seconds=0.0)
    slow_holder = slow.reserve(100 * MiB, call=None)
    with pytest.raises(ServiceUnavailable, match="retry"):
        slow.reserve(50 * MiB, call=None)
    slow_holder()
    blocker()
    assert admission.waiting == 0 and admission.held_bytes == 0


def test_a_built_answer_takes_room_at_once_or_after_a_short_wait_then_is_refused():
    """``hold``: an answer already built (not yet sent) takes room in the same budget, ahead of the large requests
    waiting; when none is left it waits a short while for room, then UNAVAILABLE (retry)."""
    admission = WorkAdmission(100 * MiB, small_bytes=4 * MiB)
    holder = admission.reserve(60 * MiB, call=None)
    _, admitted, waiting = _waiter(admission, 50 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    answer = admission.hold(30 * MiB, call=None)  # fits: taken at once, the large request still waits
    assert admission.held_bytes == 90 * MiB and admission.running == 1 and not admitted.is_set()
    with pytest.raises(ServiceUnavailable, match="answers not yet sent.*max_work_bytes: 100 MiB"):
        admission.hold(20 * MiB, call=None, max_wait_seconds=0.05)
    with pytest.raises(DeadlineExpired):
        admission.hold(20 * MiB, call=_Call(remaining=0.0), max_wait_seconds=1.0)
    released = threading.Timer(0.05, answer)
    released.start()
    later = admission.hold(20 * MiB, call=None, max_wait_seconds=10)  # room once the first answer has gone
    released.join()
    later()
    answer()  # idempotent
    holder()
    assert admitted.wait(10)
    waiting[0]()
    assert admission.held_bytes == 0 and admission.running == 0


def test_room_given_back_by_answers_calls_on_idle_once_nothing_is_held():
    """A burst of holds alone (overlapping Chunk calls: small requests holding their ids) grows the heap like a large
    request: the release that leaves nothing held calls ``on_idle`` (the worker's malloc_trim) once answers held
    TRIM_AFTER_ANSWER_BYTES at once; answers that never held that much together never call it."""
    trims = []
    admission = WorkAdmission(256 * MiB, small_bytes=4 * MiB, answer_room_bytes=None, on_idle=lambda: trims.append(1))
    for _ in range(50):  # small answers one after another: never a trim
        admission.hold(1 * MiB, call=None)()
    assert trims == []
    held = [admission.hold(16 * MiB, call=None) for _ in range(4)]
    for release in held[:3]:
        release()
    assert trims == []  # one still held
    held[3]()
    assert trims == [1] and admission.held_bytes == 0
    admission.hold(2 * MiB, call=None)()  # the burst's trim is done: a small answer after it calls nothing
    assert trims == [1]
    large = admission.reserve(64 * MiB, call=None)
    answer = admission.hold(TRIM_AFTER_ANSWER_BYTES, call=None)
    large()  # the last large request's end trims, as before
    assert trims == [1, 1]
    answer()  # the answer held since counts from what it held then: the room it gives back trims again
    assert trims == [1, 1, 1]


def test_the_room_wanted_clock_runs_only_while_room_is_wanted():
    """``room_wanted_seconds`` is what a stream whose client leaves its answer unread is charged (idle_streams.py): it
    stands still while nobody waits, runs while a large request waits for room, and for a second after an answer
    found none."""
    admission = WorkAdmission(100 * MiB, small_bytes=4 * MiB)
    holder = admission.reserve(90 * MiB, call=None)
    before = admission.room_wanted_seconds()
    time.sleep(0.2)
    assert admission.room_wanted_seconds() == before  # room held, nobody wants it
    _, admitted, waiting = _waiter(admission, 50 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    # It runs as long as the waiter looks (every 0.1 s, each look wanting room 0.2 s on): a waiter a loaded machine
    # holds back past 0.2 s lets it stand still meanwhile, so it is waited for, not read after a fixed sleep.
    _wait_until(lambda: admission.room_wanted_seconds() - before >= 0.2)
    assert admission.room_wanted_seconds() - before < 5
    holder()
    assert admitted.wait(10)
    time.sleep(0.3)  # past the waiter's last look (0.2 s)
    after_wait = admission.room_wanted_seconds()
    time.sleep(0.2)
    assert admission.room_wanted_seconds() == after_wait  # stood still again
    with pytest.raises(ServiceUnavailable):
        admission.hold(60 * MiB, call=None)  # no room: wanted for the next second
    time.sleep(0.3)
    assert 0.2 <= admission.room_wanted_seconds() - after_wait <= 1.0 + 1e-6
    waiting[0]()


def test_answers_held_one_after_another_do_not_keep_out_a_waiting_large_request():
    """Answers taking room (``hold``) go ahead of the large requests waiting, each for the milliseconds its client
    takes to read it; but overlapping, they always held some, and a request the size of the budget (it runs alone)
    waited its whole max_wait_seconds, then UNAVAILABLE. Once the first waiting request has waited
    HOLD_YIELDS_AFTER_SECONDS, an answer in its way is refused (retry) instead."""
    from tokend.service.admission import HOLD_YIELDS_AFTER_SECONDS

    admission = WorkAdmission(100 * MiB, small_bytes=4 * MiB, max_wait_seconds=HOLD_YIELDS_AFTER_SECONDS + 4)
    stop, refused = threading.Event(), []

    def answers() -> None:  # a reading client's answers, each held until the next is: never none held
        previous = None
        while not stop.is_set():
            try:
                current = admission.hold(64 << 10, call=None)
            except ServiceUnavailable as refusal:
                current = None
                refused.append(str(refusal))
            if previous is not None:
                previous()
            previous = current
            time.sleep(0.001)
        if previous is not None:
            previous()

    reader = threading.Thread(target=answers)
    reader.start()
    try:
        _wait_until(lambda: admission.held_bytes > 0)
        started = time.monotonic()
        release = admission.reserve(200 * MiB, call=None)  # UNAVAILABLE after its max_wait_seconds before
        waited = time.monotonic() - started
        assert admission.held_bytes == 100 * MiB
        release()
    finally:
        stop.set()
        reader.join()
    assert HOLD_YIELDS_AFTER_SECONDS <= waited < HOLD_YIELDS_AFTER_SECONDS + 2, waited
    assert refused and all("goes to a large request that has waited" in reason for reason in refused), refused[:3]
    assert admission.held_bytes == 0 and admission.waiting == 0


def test_large_requests_leave_the_answer_room_to_answers(monkeypatch):
    """Issue 13 (room22): a large request reserving the whole budget (a 4.4 MB document's ChunkStream) had every answer
    of 16 KiB or more refused while it ran. Large requests now hold at most the budget less ``answer_room_bytes``:
    answers take that room while they run, even once the first large request waiting has waited (answers within
    the room are never in its way); answers beyond it still yield to that request; both together stay within the
    budget."""
    from tokend.service import admission as gate

    monkeypatch.setattr(gate, "HOLD_YIELDS_AFTER_SECONDS", 0.0)  # the first waiting has waited long enough at once
    admission = WorkAdmission(100 * MiB, small_bytes=4 * MiB, answer_room_bytes=20 * MiB)
    holder = admission.reserve(500 * MiB, call=None)  # runs alone, on the budget less the room
    assert admission.held_bytes == 80 * MiB
    _, admitted, waiting = _waiter(admission, 30 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    answers = [admission.hold(5 * MiB, call=None) for _ in range(4)]  # the room, a large request waiting
    assert admission.held_bytes == 100 * MiB and not admitted.is_set()
    with pytest.raises(ServiceUnavailable, match="answers not yet sent"):
        admission.hold(1 * MiB, call=None)  # the budget holds both
    holder()
    assert admitted.wait(10) and admission.held_bytes == 50 * MiB  # 30 beside the 20 of answers
    waiting[0]()
    # No large request running: answers may take the whole budget, but beyond the room they yield to a waiting one.
    answers += [admission.hold(10 * MiB, call=None) for _ in range(4)]  # 60 MiB of answers
    _, admitted, waiting = _waiter(admission, 80 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    with pytest.raises(ServiceUnavailable, match="goes to a large request that has waited"):
        admission.hold(1 * MiB, call=None)  # 61 MiB of answers: in its way
    for release in answers[4:]:
        release()
    assert admitted.wait(10) and admission.held_bytes == 100 * MiB  # 80 beside the room's 20
    for release in answers[:4]:
        release()
    waiting[0]()
    assert admission.held_bytes == admission.answer_bytes == admission.running == 0
    with pytest.raises(ValueError, match="less than the budget"):
        WorkAdmission(100 * MiB, answer_room_bytes=100 * MiB)
    assert WorkAdmission(256 * MiB, answer_room_bytes=None).answer_room_bytes == 32 * MiB


def test_a_call_whose_answer_is_not_sent_in_time_is_cancelled():
    """SendDeadlines: the record's end actions run when gRPC finishes the call; a call still unfinished at its
    deadline is cancelled (gRPC then finishes it, running them)."""
    from tokend.server.call_outcome import CallOutcome
    from tokend.server.unsent_answers import SendDeadlines

    class Context:
        def __init__(self) -> None:
            self.callbacks, self.cancelled = [], threading.Event()

        def add_callback(self, callback) -> bool:
            self.callbacks.append(callback)
            return True

        def peer(self) -> str:
            return "ipv4:127.0.0.1:50000"

        def cancel(self) -> None:
            self.cancelled.set()
            for callback in self.callbacks:
                callback()

    told = []
    deadlines = SendDeadlines(on_cancel=lambda: told.append(1))
    sent, stalled, ended = Context(), Context(), []
    outcomes = {name: CallOutcome() for name in ("sent", "stalled")}
    statuses = []  # (call, status) as its log line and handled count get them
    for name, outcome in outcomes.items():
        outcome.then(lambda status, _ended, name=name: statuses.append((name, status)))
    assert deadlines.end_after(sent, 0.05, outcome=outcomes["sent"])(lambda: ended.append("sent"))
    assert deadlines.end_after(stalled, 0.1, outcome=outcomes["stalled"])(lambda: ended.append("stalled"))
    for callback in sent.callbacks:  # its answer was sent at once
        callback()
    assert stalled.cancelled.wait(10)
    assert ended == ["sent", "stalled"] and not sent.cancelled.is_set() and deadlines.cancelled == 1
    assert told == [1]  # the worker's tokend_answers_cancelled_total
    # the call's own records: its status once it ended (they said OK, written when its handler had answered)
    assert statuses == [("sent", grpc.StatusCode.OK), ("stalled", grpc.StatusCode.CANCELLED)]
    late = []
    outcomes["stalled"].then(lambda status, _ended: late.append(status))  # a writer given after the end: at once
    outcomes["stalled"].end(grpc.StatusCode.OK)  # a second end changes nothing
    assert late == [grpc.StatusCode.CANCELLED] and len(statuses) == 2



def test_the_calls_of_a_connection_sending_answers_get_its_deadline():
    """A call whose own deadline passes while its connection is sending answers (one ended since) gets the
    connection's: ``seconds`` after its latest call plus what all the answers it held unsent then take at the
    least rate (gRPC sends them side by side). A connection that sends nothing is cancelled at each call's own.
    The time is a clock the test moves (a stall of the machine once moved one deadline past another)."""
    from tokend.server.unsent_answers import SendDeadlines

    clock = ManualClock()
    deadlines = SendDeadlines(clock=clock)
    reads, never = "ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2"
    first, second, sent = FakeContext(reads), FakeContext(reads), FakeContext(reads)
    never_read, never_read_either = FakeContext(never), FakeContext(never)
    made = clock.now()
    for call, sending_seconds in [(first, 0.2), (never_read, 0.2), (second, 0.5), (never_read_either, 0.5)]:
        assert deadlines.end_after(call, 0.1, sending_seconds=sending_seconds)(lambda: None)  # own: 0.3 s, 0.6 s
    assert deadlines.end_after(sent, 0.1)(lambda: None)
    sent.end("closed")  # its answer was sent: the first connection reads
    calls = {"first": first, "second": second, "never_read": never_read, "never_read_either": never_read_either}

    def cancelled_at(seconds: float) -> set[str]:
        clock.advance_to(made + seconds)
        return {name for name, call in calls.items() if call.cancelled.is_set()}

    assert cancelled_at(0.299) == set()
    assert cancelled_at(0.301) == {"never_read"}  # its own deadline; the first connection's call kept
    assert cancelled_at(0.599) == {"never_read"}
    assert cancelled_at(0.601) == {"never_read", "never_read_either"}
    assert cancelled_at(0.799) == {"never_read", "never_read_either"}
    assert cancelled_at(0.801) == set(calls)  # the first connection's deadline: 0.1 + 0.2 + 0.5 s
    assert deadlines.cancelled == 4 and not deadlines._connections  # nothing kept of the ended calls


def test_a_connection_sending_some_answers_does_not_keep_another_for_ever():
    """The connection's deadline, pushed by each of its new calls, kept a call whose own deadline had passed for as
    long as the connection sent other answers: a client reading one small answer every 50 ms kept an unread call
    past 3 s. Now it keeps it to a limit fixed when the call's own deadline passes (its own + ``seconds`` + what
    the connection's other answers, made before and since, take)."""
    from tokend.server.unsent_answers import SendDeadlines

    clock = ManualClock()
    deadlines = SendDeadlines(clock=clock)
    unread = FakeContext()
    made = clock.now()
    assert deadlines.end_after(unread, 0.2)(lambda: None)  # its own deadline: 0.2 s
    while not unread.cancelled.is_set() and clock.now() - made < 3.0:
        read = FakeContext()  # the same connection (peer); its answer is sent
        assert deadlines.end_after(read, 0.2, sending_seconds=0.01)(lambda: None)
        clock.advance(0.05)
        read.end("closed")
    assert unread.cancelled.is_set(), "an unread call kept beside a connection that sends others"
    assert clock.now() - made < 2.0  # its own 0.2 s + 0.2 s + ~0.1 s of the answers made meanwhile


def test_a_worker_ending_tells_the_outcome_of_the_calls_whose_end_has_not_come():
    """SendDeadlines.abandon (the worker's last act): a call still watched is told UNAVAILABLE (its connection closes
    with the process), one cancelled here whose end gRPC has not reported yet CANCELLED (what its client was sent),
    one that ended nothing more."""
    from tokend.server.call_outcome import CallOutcome
    from tokend.server.unsent_answers import SendDeadlines

    deadlines = SendDeadlines()
    # A connection each (none sends for another); a cancel whose end gRPC has not reported yet.
    contexts = {name: FakeContext(f"ipv4:127.0.0.1:{50000 + port}", ends_on_cancel=False)
                for port, name in enumerate(("sent", "cancelled", "waiting"))}  # fmt: skip
    statuses = {}
    for name, context in contexts.items():
        outcome = CallOutcome()
        outcome.then(lambda status, _ended, name=name: statuses.setdefault(name, []).append(status))
        assert deadlines.end_after(context, 0.05 if name == "cancelled" else 60, outcome=outcome)(lambda: None)
    for callback in contexts["sent"].callbacks:
        callback()
    assert contexts["cancelled"].cancelled.wait(10)
    assert statuses == {"sent": [grpc.StatusCode.OK]}
    assert deadlines.abandon() == 2
    assert statuses == {"sent": [grpc.StatusCode.OK], "cancelled": [grpc.StatusCode.CANCELLED],
                        "waiting": [grpc.StatusCode.UNAVAILABLE]}  # fmt: skip
    for callback in contexts["waiting"].callbacks:  # an end reported after: nothing more
        callback()
    assert statuses["waiting"] == [grpc.StatusCode.UNAVAILABLE] and deadlines.abandon() == 0


def test_a_record_writer_that_raises_loses_neither_the_other_records_nor_the_calls_memory(monkeypatch):
    """A watched call's records are written by writers its outcome calls when it ends. A call its client cancelled
    before its handler answered ends at once, in the handler's thread: a log writer raising there (a bug, a broken
    log handler) left the call's end actions unrun, its answer's room in the work budget held for good, and the
    handled count unwritten. Each writer now runs on its own: its error is logged, the others and the end actions
    run."""
    from prometheus_client import CollectorRegistry

    import tokend.server.logging_interceptor as logging_interceptor
    from tokend.server.error_interceptor import ErrorInterceptor
    from tokend.server.interceptor_chain import InterceptorChain
    from tokend.server.metrics import ServerMetrics
    from tokend.server.metrics_interceptor import MetricsInterceptor
    from tokend.server.unsent_answers import FLOOR_BYTES, SendDeadlines, UnsentAnswers
    from tokend.service import current_record

    def decode(size: int, context) -> bytes:
        current_record().model = ("cl100k_base", 1)
        return b"x" * size

    def broken_write(*args, **kwargs) -> None:
        raise RuntimeError("a broken log handler")

    monkeypatch.setattr(logging_interceptor, "_write", broken_write)
    metrics = ServerMetrics(CollectorRegistry())
    admission = WorkAdmission(64 * MiB)
    answers = UnsentAnswers(admission, send_seconds=30.0, deadlines=SendDeadlines())
    chain = InterceptorChain([MetricsInterceptor(metrics), logging_interceptor.LoggingInterceptor(), ErrorInterceptor(), answers])
    details = type("Details", (), {"method": "/tokend.v1.Tokenizer/Decode"})()
    handler = chain.intercept_service(lambda _details: grpc.unary_unary_rpc_method_handler(decode), details).unary_unary
    # its client cancelled it while its handler ran: the call is over already
    over = FakeContext("ipv4:127.0.0.1:4", client="cancelled", over=True)
    assert handler(FLOOR_BYTES, over) == b"x" * FLOOR_BYTES  # RuntimeError before
    assert admission.held_bytes == 0  # 3 x 16 KiB held for good before
    handled = metrics.handled.labels("unary", "tokend.v1.Tokenizer", "Decode", "CANCELLED")._value.get()
    assert handled == 1


def test_calls_its_client_cancels_do_not_keep_a_connection_sending():
    """Only an answer sent shows that a connection reads: a call its client cancelled (its RST_STREAM, or its own
    deadline) ends too, and counted as a send it let a client that read nothing keep its unread answers (and the
    work budget they hold) for as long as it made and cancelled a call every few seconds."""
    from tokend.server.call_outcome import CallOutcome
    from tokend.server.unsent_answers import SendDeadlines

    clock = ManualClock()
    deadlines = SendDeadlines(clock=clock)
    never_read = FakeContext()
    made = clock.now()
    assert deadlines.end_after(never_read, 0.1, sending_seconds=0.1)(lambda: None)  # its own deadline: 0.2 s
    statuses = []
    while not never_read.cancelled.is_set() and clock.now() - made < 3.0:
        # a call made and cancelled by the client every 50 ms; nothing is ever read
        cancelled, outcome = FakeContext(), CallOutcome()
        outcome.then(lambda status, _ended: statuses.append(status))
        assert deadlines.end_after(cancelled, 0.1, sending_seconds=0.1, outcome=outcome)(lambda: None)
        cancelled.end("cancelled")  # as grpcio marks a call its client cancelled
        clock.advance(0.05)
    assert never_read.cancelled.is_set(), "a connection that read nothing kept its unread answer"
    assert clock.now() - made < 2.0
    assert statuses and set(statuses) == {grpc.StatusCode.CANCELLED}  # what their client got, not OK


def test_grpcio_marks_the_calls_their_client_cancelled():
    """What SendDeadlines reads of an ended call (grpcio's state of it): a call whose answer was sent is not
    marked cancelled by its client, one its client cancelled is."""
    from concurrent import futures

    from tokend.server.call_outcome import end_status, ended_by_client

    seen: dict[str, tuple[bool, grpc.StatusCode]] = {}
    ended = {name: threading.Event() for name in ("sent", "cancelled", "late", "here")}

    def handler(request: bytes, context) -> bytes:
        name = request.decode()

        def on_end() -> None:
            seen[name] = ended_by_client(context), end_status(context, cancelled_here=name == "here")
            ended[name].set()

        context.add_callback(on_end)
        if name == "here":
            context.cancel()  # as SendDeadlines does
        while name in ("cancelled", "late") and context.is_active():  # until its client cancels it, or its deadline
            time.sleep(0.01)
        return b"ok"

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("t.T", {"M": grpc.unary_unary_rpc_method_handler(handler)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            method = channel.unary_unary("/t.T/M")
            assert method(b"sent", timeout=10) == b"ok"
            future = method.future(b"cancelled", timeout=30)
            time.sleep(0.3)
            future.cancel()
            with pytest.raises(grpc.RpcError) as late:
                method(b"late", timeout=0.3)
            with pytest.raises(grpc.RpcError) as here:
                method(b"here", timeout=10)
            assert all(ended[name].wait(10) for name in ended)
    finally:
        server.stop(None)
    assert (late.value.code(), here.value.code()) == (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    assert seen == {
        "sent": (False, grpc.StatusCode.OK), "cancelled": (True, grpc.StatusCode.CANCELLED),
        "late": (True, grpc.StatusCode.DEADLINE_EXCEEDED), "here": (True, grpc.StatusCode.CANCELLED),
    }  # fmt: skip


def test_a_watched_call_is_counted_handled_once_when_it_ends_and_the_others_when_they_answer():
    """The worker's records of a call (grpc_server_handled_total, the request log) were written when its handler
    answered: a call whose answer holds room and is then cancelled unread said OK. Such a call is now counted when
    it ends, with its client's status; a call whose answer holds nothing, at its answer, as before."""
    from prometheus_client import CollectorRegistry

    from tokend.server.error_interceptor import ErrorInterceptor
    from tokend.server.interceptor_chain import InterceptorChain
    from tokend.server.logging_interceptor import LoggingInterceptor
    from tokend.server.metrics import ServerMetrics
    from tokend.server.metrics_interceptor import MetricsInterceptor
    from tokend.server.unsent_answers import FLOOR_BYTES, SendDeadlines, UnsentAnswers
    from tokend.service import current_record

    def decode(size: int, context) -> bytes:
        current_record().model = ("cl100k_base", 1)
        return b"x" * size

    metrics = ServerMetrics(CollectorRegistry())
    answers = UnsentAnswers(WorkAdmission(64 * MiB), send_seconds=30.0, deadlines=SendDeadlines())
    chain = InterceptorChain([MetricsInterceptor(metrics), LoggingInterceptor(), ErrorInterceptor(), answers])
    details = type("Details", (), {"method": "/tokend.v1.Tokenizer/Decode"})()
    handler = chain.intercept_service(lambda _details: grpc.unary_unary_rpc_method_handler(decode), details).unary_unary

    def handled() -> dict[str, float]:
        return {code: metrics.handled.labels("unary", "tokend.v1.Tokenizer", "Decode", code)._value.get()
                for code in ("OK", "CANCELLED")}  # fmt: skip

    small, read, unread = (FakeContext("ipv4:127.0.0.1:4") for _ in range(3))
    handler(FLOOR_BYTES - 1, small)
    assert handled() == {"OK": 1, "CANCELLED": 0}  # at its answer (its end is not watched)
    handler(FLOOR_BYTES, read)
    handler(FLOOR_BYTES, unread)
    assert handled() == {"OK": 1, "CANCELLED": 0}  # watched: not yet
    read.end("closed")
    unread.end("cancelled")  # its client cancelled it before reading
    small.end("closed")
    assert handled() == {"OK": 2, "CANCELLED": 1}  # OK and CANCELLED before
    assert metrics.started.labels("unary", "tokend.v1.Tokenizer", "Decode")._value.get() == 3


def test_the_service_holds_the_reservation_until_the_call_record_ends():
    admission = WorkAdmission(64 * MiB, small_bytes=1 * MiB)
    service = TokenizerService(ServedModels(Registry.open()), admission=admission)
    text = "x" * (2 * MiB)
    expected = working_bytes("encode", sizes=[2 * MiB])
    with recording():
        service.encode("cl100k_base", [text])
        assert admission.held_bytes == expected  # the front-end builds its answer inside the record
    assert admission.held_bytes == 0
    service.count("cl100k_base", [text])  # no record: given back when the call returns
    assert admission.held_bytes == 0
    with pytest.raises(Exception):
        with recording():
            service.encode("cl100k_base", [text, "a <|endoftext|>"])
    assert admission.held_bytes == 0 and admission.running == 0


def _peak_and_now_mib(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["VmRSS"].split()[0]) // 1024


def test_concurrent_large_encodes_stay_within_the_budget():
    concurrent, piece_bytes = 8, 2 * MiB
    pieces = ["".join(random.Random(seed).choices(string.ascii_letters, k=piece_bytes)) for seed in range(2)]
    expected = tiktoken.get_encoding("cl100k_base").encode_ordinary_batch(pieces)
    with start_server("--max-work-bytes", str(64 * MiB), workers=1, metrics=False) as server:
        pid = server.worker_pids()[0]
        stub = server.stub(server.channel(**{"grpc.max_receive_message_length": 64 * MiB}))
        stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="warm up")]), timeout=30)
        open(f"/proc/{pid}/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
        start_peak, start = _peak_and_now_mib(pid)

        refused = []

        def encode(index: int) -> list[int]:
            # Beyond one running and four waiting, the worker answers UNAVAILABLE: retried, as clients do.
            request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=pieces[index % 2])])
            for _ in range(600):
                try:
                    return list(stub.Encode(request, timeout=300).results[0].ids)
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    refused.append(error.details())
                    threading.Event().wait(0.1)
            raise AssertionError("never admitted")

        with ThreadPoolExecutor(concurrent) as pool:
            answers = list(pool.map(encode, range(concurrent)))
        peak, after = _peak_and_now_mib(pid)
    assert answers == [expected[index % 2] for index in range(concurrent)]
    assert all("busy with large requests" in details for details in refused), refused[:3]
    growth = peak - start
    print(f"{concurrent} concurrent {piece_bytes >> 20} MiB single-piece encodes: worker RSS {start} MiB, "
          f"peak {peak} MiB (+{growth}), {after} MiB after")  # fmt: skip
    # Measured: +305 MiB peak and +260 MiB after the burst without the gate (--max-work-bytes 0); +139 and
    # +57 with it. The budget admits one at a time; the rest of the peak is the running call's answer, the
    # previous answer on its way out, the waiting requests' messages and the allocator's slack.
    assert growth < 200, f"peak RSS grew {growth} MiB under a 64 MiB budget"
    assert after - start < 120, f"RSS stayed {after - start} MiB above its start after the burst"


def _read_side_by_side(deadlines, clock, big: float, small: float, in_flight: int, rate: float, seconds: float) -> str:
    """A client reading its connection at ``rate`` (in least-rate seconds of answer a second) with ``in_flight``
    answers of ``small`` kept in flight (a pipeline: each one read, the next made) and one of ``big`` made after
    them; the connection's bandwidth shared equally among its unsent answers (gRPC sends them side by side, a
    window of each in turn), read in steps of 5 ms of ``clock`` (the one ``deadlines`` waits on: each step's
    deadlines are decided before the next is read). Answers how the big one ended: "sent" or "cancelled"."""
    unsent: list[list] = []  # [context, what is left of it, its size]

    def make(size: float) -> FakeContext:
        context = FakeContext()
        assert deadlines.end_after(context, seconds, sending_seconds=size)(lambda: None)
        unsent.append([context, size, size])
        return context

    for _ in range(in_flight):
        make(small)
    watched = make(big)
    step = 0.005
    for _ in range(int(20.0 / step)):
        clock.advance(step)
        if watched.cancelled.is_set():
            return "cancelled"
        bandwidth = step * rate
        while bandwidth > 1e-9 and unsent:
            share, bandwidth = bandwidth / len(unsent), 0.0
            for answer in list(unsent):
                sent = min(share, answer[1])
                answer[1] -= sent
                bandwidth += share - sent
                if answer[1] <= 1e-9:
                    unsent.remove(answer)
                    answer[0].end("closed")
                    if answer[0] is watched:
                        return "sent"
                    make(answer[2])
    return "still unsent"


def test_a_large_answer_read_side_by_side_with_a_pipeline_keeps_its_time():
    """A client reading its connection above the least rate (1.5 times) with a pipeline of small answers in flight
    beside one large answer: the large one gets only its share of the bandwidth, and the answers made after the
    limit of its connection's deadline was fixed (review09) delayed it past that limit: cancelled, where before
    that limit it was sent (the time scaled down 20 times: --answer-send-seconds 10, 11 answers of 1 MiB in flight
    and one of 16 MiB, through 1.5 MiB/s: sent at ~128 s before the limit; cancelled at ~83 s with it). Each answer
    made since the call now adds to the limit what it can delay it side by side: its size, at most the call's.
    The reader and the deadlines run on one clock the test moves (on the wall clock a stall let the deadline
    thread cancel before the reader caught up)."""
    from tokend.server.unsent_answers import SendDeadlines

    clock = ManualClock()
    deadlines = SendDeadlines(clock=clock)
    assert _read_side_by_side(deadlines, clock, big=0.8, small=0.05, in_flight=11, rate=1.5, seconds=0.5) == "sent"


class _Link:
    """What ``AckedBytes.of`` reads, for the peers of ``rates``: the bytes acknowledged, growing at the peer's rate
    (bytes a second) of ``clock`` since it was made; a peer not in it cannot be read (None)."""

    def __init__(self, rates: dict[str, float], clock: ManualClock) -> None:
        self.rates, self.clock, self.started = rates, clock, clock.now()

    def of(self, peer: str) -> int | None:
        rate = self.rates.get(peer)
        return None if rate is None else int(rate * (self.clock.now() - self.started))


def test_the_calls_of_a_connection_whose_peer_reads_get_its_deadline_though_no_answer_ended():
    """gRPC sends a connection's answers side by side: under load none of them may end by the first one's own
    deadline though the client reads above the least rate, and that call was cancelled (the connection was
    "sending" only once an answer had ended). Now a connection whose peer acknowledged at least half the least
    rate since the call's last look (LOOK_SECONDS before its own deadline) is sending too. A peer reading less
    than that, nothing, or one whose reading fails (None: no socket, a unix socket) is cancelled at each call's
    own deadline, as before. The time is a clock the test moves in 10 ms steps."""
    from tokend.server.unsent_answers import LOOK_SECONDS, MIN_READ_BYTES_PER_SECOND, SendDeadlines

    reads, trickles, still, unknown = "ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2", "ipv4:127.0.0.1:3", "unix:/tmp/x"
    clock = ManualClock()
    link = _Link({reads: 1.5 * MIN_READ_BYTES_PER_SECOND, trickles: 0.3 * MIN_READ_BYTES_PER_SECOND, still: 0.0}, clock)
    deadlines = SendDeadlines(acked_bytes=link, clock=clock)
    calls = {peer: [FakeContext(peer), FakeContext(peer)] for peer in (reads, trickles, still, unknown)}
    made = clock.now()
    for pair in calls.values():
        for call in pair:  # own deadline 0.1 + 0.6 s; the connection's: 0.1 + 1.2 s
            assert deadlines.end_after(call, 0.1, sending_seconds=0.6)(lambda: None)
    assert LOOK_SECONDS < 0.7  # each call is looked at before its own deadline, then at it

    def cancelled_at(seconds: float) -> set[str]:
        while clock.now() < made + seconds:
            clock.advance_to(min(clock.now() + 0.01, made + seconds))
        return {peer for peer, pair in calls.items() if all(call.cancelled.is_set() for call in pair)}

    assert cancelled_at(0.699) == set()
    assert cancelled_at(0.701) == {trickles, still, unknown}  # and the reading one's before
    assert cancelled_at(1.299) == {trickles, still, unknown}
    assert cancelled_at(1.301) == {reads, trickles, still, unknown}  # none ends: at the connection's deadline
    assert deadlines.cancelled == 8 and not deadlines._connections


def test_an_answer_that_finds_no_room_has_unread_answers_cancelled_for_it(monkeypatch):
    """Issue 13 (room23): the room answers take went first come, first served: answers a client leaves unread held
    it until their deadline (~11 s) and a reading client's answer was refused meanwhile. Now an answer that finds no
    room asks ``unread_room_maker`` for what it lacks (beyond the budget, or beyond the answer room when a large
    request has waited for it) and waits for the room the answers it cancelled give back; so does the first large
    request waiting, once a second, when answers keep it out. Without the maker: refused, as before."""
    from tokend.service import admission as gate

    admission = WorkAdmission(10 * MiB, small_bytes=1 * MiB, answer_room_bytes=2 * MiB)
    unread = [admission.hold(4 * MiB, call=None) for _ in range(2)]
    with pytest.raises(ServiceUnavailable, match="answers not yet sent"):
        admission.hold(4 * MiB, call=None)
    asked: list[int] = []

    def cancel_unread(wanted: int) -> int:
        asked.append(wanted)
        threading.Timer(0.05, unread.pop(0)).start()  # gRPC ends the call a moment after its cancel
        return 4 * MiB

    admission.unread_room_maker = cancel_unread
    answer = admission.hold(4 * MiB, call=None)
    assert asked == [2 * MiB] and admission.answer_bytes == 8 * MiB
    answer()
    # A large request kept out by answers beyond the room: it asks for them once it has waited ROOM_ASK_SECONDS.
    monkeypatch.setattr(gate, "ROOM_ASK_SECONDS", 0.1)
    unread.append(admission.hold(4 * MiB, call=None))  # 8 MiB of answers
    asked.clear()
    _, admitted, waiting = _waiter(admission, 5 * MiB)
    assert admitted.wait(10) and asked == [3 * MiB] and admission.held_bytes == 9 * MiB
    # An answer that fits the budget but would stand, beyond the room, in the way of the first large request waiting
    # (which has waited): it asks for what puts it within the room or out of that way, the fewer.
    monkeypatch.setattr(gate, "HOLD_YIELDS_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(gate, "ROOM_ASK_SECONDS", 60.0)
    _, second, waiting_too = _waiter(admission, 6 * MiB)
    _wait_until(lambda: admission.waiting == 1)
    asked.clear()
    answer = admission.hold(1 * MiB, call=None)  # refused "goes to a large request" without the maker
    assert asked == [min(4 + 1 - 2, 9 + 1 + 6 - 10) * MiB] and admission.answer_bytes == 1 * MiB
    waiting[0]()
    assert second.wait(10)
    answer()
    waiting_too[0]()
    assert admission.held_bytes == admission.answer_bytes == admission.running == 0


def test_room_is_made_by_cancelling_the_oldest_answers_of_connections_not_reading(monkeypatch):
    """``SendDeadlines.make_room``: the calls holding room whose answers have been unread ``UNREAD_ROOM_SECONDS``, on
    connections that have shown no reading as long, oldest first, until they held what is wanted. A connection whose
    peer acknowledges half the least rate or more (read again now), or whose answer was sent meanwhile, keeps its
    calls; so do younger calls, and a call holding no room. Its cancel is the deadline's: counted, CANCELLED."""
    from tokend.server import unsent_answers
    from tokend.server.call_outcome import CallOutcome
    from tokend.server.unsent_answers import MIN_READ_BYTES_PER_SECOND, SendDeadlines

    monkeypatch.setattr(unsent_answers, "UNREAD_ROOM_SECONDS", 0.4)
    monkeypatch.setattr(unsent_answers, "_EARLY_LOOK_SECONDS", 0.2)
    reads, still, unknown, sends = "ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2", "unix:/tmp/x", "unix:/tmp/y"
    clock = ManualClock()
    deadlines = SendDeadlines(acked_bytes=_Link({reads: 1.5 * MIN_READ_BYTES_PER_SECOND, still: 0.0}, clock), clock=clock)
    calls = {name: FakeContext(peer) for name, peer in [
        ("reads", reads), ("still 1", still), ("still 2", still), ("still 3", still), ("unknown", unknown),
        ("sends", sends), ("sent", sends), ("still, no room", still)]}  # fmt: skip
    outcomes = {name: CallOutcome() for name in calls}
    statuses: dict[str, object] = {}
    for name, context in calls.items():
        outcomes[name].then(lambda status, _, name=name: statuses.__setitem__(name, status))
        held = 0 if name == "still, no room" else 4 * MiB
        assert deadlines.end_after(context, 60.0, outcome=outcomes[name], held_bytes=held)(lambda: None)
        clock.advance(0.01)  # made one after another: oldest first
    assert deadlines.make_room(100 * MiB) == 0  # all younger than UNREAD_ROOM_SECONDS
    young = FakeContext(still)
    clock.advance(0.25)  # past their early looks (the readings a rate is taken from)
    clock.advance(0.2)
    calls["sent"].end("closed")  # an answer of its connection sent: it reads
    assert deadlines.end_after(young, 60.0, held_bytes=4 * MiB)(lambda: None)
    assert deadlines.make_room(6 * MiB) == 8 * MiB  # the two oldest not reading
    assert [name for name, context in calls.items() if context.cancelled.is_set()] == ["still 1", "still 2"]
    assert deadlines.make_room(100 * MiB) == 8 * MiB  # the rest not reading: "unknown" by its sent answers only
    assert [name for name, context in calls.items() if context.cancelled.is_set()] == [
        "still 1", "still 2", "still 3", "unknown"]  # fmt: skip
    assert not young.cancelled.is_set() and deadlines.cancelled == 4
    assert statuses == {name: grpc.StatusCode.CANCELLED for name in ("still 1", "still 2", "still 3", "unknown")} | {
        "sent": grpc.StatusCode.OK}  # fmt: skip


def test_connections_shown_reading_do_not_use_up_the_readings_that_find_a_client_not_reading(monkeypatch):
    """review23: ``make_room`` reads at most ``_MAX_READINGS_FOR_ROOM`` connections' acknowledgements a call, oldest
    first, and keeps the calls of those it did not read. Eight slow readers' answers (unread past
    ``UNREAD_ROOM_SECONDS``, the reading they showed as old) used them all at each ask, and a client reading nothing
    behind them kept its 4 MiB through every ask spaced ``UNREAD_ROOM_SECONDS`` or more apart (a large request asks
    once a second): 10 of 10 asks freed nothing. Now a connection whose latest reading showed it reading is read again
    only once those that did not were: ten readers ahead, the second ask finds the client not reading."""
    from tokend.server import unsent_answers
    from tokend.server.unsent_answers import _MAX_READINGS_FOR_ROOM, MIN_READ_BYTES_PER_SECOND, SendDeadlines

    monkeypatch.setattr(unsent_answers, "UNREAD_ROOM_SECONDS", 0.3)
    monkeypatch.setattr(unsent_answers, "_EARLY_LOOK_SECONDS", 0.15)
    readers = [f"ipv4:127.0.0.1:{port}" for port in range(1, _MAX_READINGS_FOR_ROOM + 3)]
    clock = ManualClock()
    deadlines = SendDeadlines(acked_bytes=_Link({**{peer: 2 * MIN_READ_BYTES_PER_SECOND for peer in readers},
                                                 "ipv4:127.0.0.2:1": 0.0}, clock), clock=clock)  # fmt: skip
    slow = [FakeContext(peer) for peer in readers]
    for context in slow:
        assert deadlines.end_after(context, 60.0, held_bytes=1 * MiB)(lambda: None)
    unread = FakeContext("ipv4:127.0.0.2:1")
    assert deadlines.end_after(unread, 60.0, held_bytes=4 * MiB)(lambda: None)
    clock.advance(0.3)  # past their early looks (the readings their first rates are taken from)
    freed = []
    for _ in range(4):  # asks spaced past UNREAD_ROOM_SECONDS: each reading a reader showed is past at the next
        clock.advance(0.35)
        freed.append(deadlines.make_room(4 * MiB))
    assert freed == [0, 4 * MiB, 0, 0], freed  # the first reads eight readers, the second the last two, then it
    assert unread.cancelled.is_set() and not any(context.cancelled.is_set() for context in slow)
    # One that showed reading and stopped is read again while room is still wanted, and gives its room.
    deadlines._acked_bytes.rates[readers[0]] = 0.0
    clock.advance(0.35)
    assert deadlines.make_room(1 * MiB) == 1 * MiB
    assert [context.cancelled.is_set() for context in slow] == [True] + [False] * (len(slow) - 1)
    assert deadlines.cancelled == 2


def test_a_call_that_ends_as_it_is_watched_is_not_kept_among_the_unended():
    """review23: gRPC runs a call's callbacks on its own thread, maybe before ``end_after``'s register has put the
    call among those watched (right after ``add_callback``); put there then, an ended call stayed in ``_unended``
    for good (``make_room`` scans them all, ``abandon`` counts it: 1 unsent answer told UNAVAILABLE-or-CANCELLED
    for a call that was sent)."""
    from tokend.server.call_outcome import CallOutcome
    from tokend.server.unsent_answers import SendDeadlines

    class EndsAtOnce(FakeContext):
        def add_callback(self, callback):  # gRPC's thread ends the call before register goes on
            super().add_callback(callback)
            self.end("closed")
            return True

    deadlines = SendDeadlines()
    outcome, statuses = CallOutcome(), []
    outcome.then(lambda status, _: statuses.append(status))
    ran = []
    assert deadlines.end_after(EndsAtOnce(), 60.0, outcome=outcome, held_bytes=4 * MiB)(lambda: ran.append(1))
    assert ran == [1] and statuses == [grpc.StatusCode.OK]
    assert not deadlines._unended and not deadlines._connections and deadlines.make_room(4 * MiB) == 0
    assert deadlines.abandon() == 0
