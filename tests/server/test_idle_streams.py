"""A DecodeStream's request messages as the idle timeout, the slot yield and a worker's drain see them (tokend.server.idle_streams),
without a server: the client's messages come from a queue the test fills, so each interleaving is chosen, not
waited for. Against a real server: tests/server/test_stream_bounds.py."""

from __future__ import annotations

import queue
import threading
import time

from support.manual_clock import ManualClock
from tokend.server.idle_streams import IdleBoundedRequests, StreamIdle


class _Client:
    """The request iterator of a stream whose client sends what the test puts in ``sent`` (None: it closes)."""

    def __init__(self) -> None:
        self.sent: queue.SimpleQueue = queue.SimpleQueue()

    def __iter__(self) -> _Client:
        return self

    def __next__(self) -> str:
        message = self.sent.get(timeout=10)
        if message is None:
            raise StopIteration
        return message


class _SlowHandler:
    """The hand-over queue of an ``IdleBoundedRequests`` whose handler thread takes what the reader handed it
    over only once ``wake`` is set: a handler not yet scheduled (the GIL elsewhere) when its message came."""

    def __init__(self, answers: queue.SimpleQueue) -> None:
        self.answers = answers
        self.wake = threading.Event()

    def put(self, item: object) -> None:
        self.answers.put(item)

    def get(self, timeout: float | None = None) -> object:
        self.wake.wait(10)
        return self.answers.get(timeout=timeout)


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_slow_stream_that_keeps_sending_is_not_ended_and_a_silent_one_is():
    """``--stream-idle-timeout`` counts afresh from each ask for a message: messages 0.6 s apart for 3.6 s, three
    times the 1 s timeout, keep the stream; 1 s of silence then ends it (StreamIdle: DEADLINE_EXCEEDED). The time
    is a clock the test moves: against a real server (tests/server/test_stream_bounds.py, before) a stall of the
    client, or of the worker between a message's arrival and its hand-over, decided the outcome."""
    clock = ManualClock()
    client = _Client()
    requests = IdleBoundedRequests(client, timeout=1.0, clock=clock)
    taken: list[str] = []
    ended: list[BaseException] = []

    def handler() -> None:  # a DecodeStream's: takes each message as it comes
        try:
            for message in requests:
                taken.append(message)
        except StreamIdle as exc:
            ended.append(exc)

    thread = threading.Thread(target=handler, daemon=True)
    thread.start()
    for index in range(6):
        clock.advance(0.6)  # the handler has asked, and waits: 0.6 s of its 1 s gone
        assert not ended, f"ended after {index} messages 0.6 s apart"
        client.sent.put(f"message {index}")
        _until(lambda: len(taken) == index + 1)
    clock.advance(0.999)
    assert not ended
    clock.advance(0.002)  # 1 s since the handler asked for the seventh
    thread.join(10)
    assert len(ended) == 1 and "no message from the client for 1 s after 6 messages" in str(ended[0]), ended
    assert taken == [f"message {index}" for index in range(6)]


def test_a_stream_whose_message_has_arrived_is_not_yielded():
    """A newcomer's make_room ends a stream whose handler has waited `stream_yield_after` for the next message.
    The reader had handed that message over already, the handler not yet awake: the stream was chosen all the
    same, answered the message and then ended with StreamYielded ("no message from the client for 10.0 s"),
    its client working; and the newcomer waited for it to finish the message (refused after 2 s if that took
    longer: a large message, an answer held by flow control). A message handed over ends the silence."""
    client = _Client()
    requests = IdleBoundedRequests(client, timeout=None)
    slow = _SlowHandler(requests._answers)
    requests._answers = slow  # type: ignore[assignment]
    received: list[object] = []

    def handler() -> None:
        try:
            for message in requests:
                received.append(message)
        except Exception as error:  # noqa: BLE001 (the test reads what ended the stream)
            received.append(error)

    thread = threading.Thread(target=handler, daemon=True)
    thread.start()
    _until(lambda: requests.silent_for() > 0)  # the handler waits for the first message
    client.sent.put("ids")
    _until(lambda: not slow.answers.empty())  # the reader handed it over; the handler has not taken it
    chosen = requests.end_silent(0.0)
    slow.wake.set()
    _until(lambda: len(received) >= 1)
    client.sent.put("more ids")
    client.sent.put(None)
    thread.join(10)
    assert not chosen, "a stream whose message had arrived was chosen to give up its slot"
    assert received == ["ids", "more ids"]


def test_a_silent_stream_chosen_before_its_message_ends_without_it():
    """The other order: chosen while silent, then the message arrives; the stream ends (StreamYielded) and
    its slot goes to the newcomer that chose it."""
    client = _Client()
    requests = IdleBoundedRequests(client, timeout=None)
    received: list[object] = []

    def handler() -> None:
        try:
            for message in requests:
                received.append(message)
        except Exception as error:  # noqa: BLE001
            received.append(error)

    thread = threading.Thread(target=handler, daemon=True)
    thread.start()
    _until(lambda: requests.silent_for() > 0)
    assert requests.end_silent(0.0)
    client.sent.put("ids")
    thread.join(10)
    assert len(received) == 1 and type(received[0]).__name__ == "StreamYielded", received
    assert "stream_yield_after" in str(received[0])


def test_a_stream_whose_answer_its_client_has_not_taken_is_cancelled_once():
    """gRPC sending an answer its client does not read keeps the handler in the send, where no exception of
    ours reaches it: the stream is chosen by the same silence, and ended by cancelling its call (once)."""
    cancelled: list[bool] = []
    requests = IdleBoundedRequests(_Client(), timeout=None, cancel=lambda: cancelled.append(True))
    assert not requests.end_silent(0.0)  # neither waiting nor sending
    requests.sending(True)
    assert requests.silent_for() >= 0.0
    assert not requests.end_silent(60.0)  # not for that long
    assert requests.end_silent(0.0) and cancelled == [True]
    assert not requests.end_silent(0.0) and cancelled == [True]
    requests.sending(False)
    assert requests.silent_for() == 0.0


def _handle(requests, received: list[object]) -> threading.Thread:
    """A handler thread that takes every message of ``requests`` into ``received``, then what ended it."""

    def handler() -> None:
        try:
            for message in requests:
                received.append(message)
        except Exception as error:  # noqa: BLE001 (the test reads what ended the stream)
            received.append(error)

    thread = threading.Thread(target=handler, daemon=True)
    thread.start()
    return thread


def test_a_stream_waiting_for_its_client_ends_at_once_when_the_worker_drains():
    """The wait for a client's next message has no end of its own (no idle timeout here): a draining worker
    waited for it until its grace period ran out. Now it ends with StreamDraining (UNAVAILABLE), and a message
    the client sends after that is never read."""
    client = _Client()
    requests = IdleBoundedRequests(client, timeout=None)
    received: list[object] = []
    client.sent.put("ids")
    thread = _handle(requests, received)
    _until(lambda: received == ["ids"] and requests.silent_for() > 0)
    requests.end_draining()
    thread.join(10)
    assert not thread.is_alive(), "the stream still waits for its client"
    assert received[0] == "ids" and type(received[1]).__name__ == "StreamDraining", received
    assert "draining" in str(received[1]) and "answering the 1 messages" in str(received[1])
    assert requests.silent_for() == 0.0


def test_a_message_handed_over_before_the_drain_is_answered_first():
    """A message the reader took from the transport before the drain began goes to the handler (its client
    will get its answer); the stream ends the next time the handler asks for one."""
    client = _Client()
    requests = IdleBoundedRequests(client, timeout=None)
    slow = _SlowHandler(requests._answers)
    requests._answers = slow  # type: ignore[assignment]
    received: list[object] = []
    thread = _handle(requests, received)
    _until(lambda: requests.silent_for() > 0)
    client.sent.put("ids")
    _until(lambda: not slow.answers.empty())  # handed over; the handler not yet awake
    requests.end_draining()
    slow.wake.set()
    thread.join(10)
    assert received[0] == "ids" and type(received[1]).__name__ == "StreamDraining", received


def test_a_stream_that_starts_as_the_worker_drains_is_ended_too():
    """A stream counted before the drain (so let through the availability gate) that reaches IdleStreams after
    `drain` took its list of streams: its first wait ends as the others did. Streams are wrapped with no idle
    timeout and no yielding too, or `drain` could not end them."""
    from tokend.server.idle_streams import IdleStreams
    from tokend.server.unary_interceptor import MethodName

    streams = IdleStreams(timeout=0.0, yield_after=0.0)
    assert streams.drain() == (0, 0)  # no DecodeStream ended, no ChunkStream left to finish
    method = MethodName.parse("/tokend.v1.Tokenizer/DecodeStream", "bidi_stream")

    def behaviour(requests, context):
        for message in requests:
            yield message

    answers = streams.handle_stream(method, behaviour, _Client(), None)
    received: list[object] = []
    thread = _handle(answers, received)
    thread.join(10)
    assert not thread.is_alive(), "the stream still waits for its client"
    assert len(received) == 1 and type(received[0]).__name__ == "StreamDraining", received


def test_memory_room_ends_only_an_unread_stream_that_holds_room() -> None:
    """``make_memory_room`` is asked for room in the work budget (a large request waiting, an answer that does not
    fit). A stream whose call reserved nothing (a small document's ChunkStream: no ``at_end`` in its record) gives
    none back when it is cancelled: it was cancelled all the same, one more each second a large request waited."""
    from tokend.server.idle_streams import IdleStreams
    from tokend.service.call_record import recording

    def chunk_stream(reserves: bool):
        def behaviour(request, context):
            record = recording().__enter__()  # the record the front-end opened (below)
            if reserves:
                record.at_end(lambda: None)  # as tokenizer._admitted does for a large request
            yield b"first"
            yield b"second"
        return behaviour

    class Context:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    streams = IdleStreams(30, 0.05)
    for reserves in (False, True):
        context = Context()
        with recording():
            answers = streams._watched(chunk_stream(reserves), None, context)
            assert next(answers) == b"first"  # handed to gRPC; its client reads nothing
            time.sleep(0.1)
            assert streams.make_memory_room() is reserves
            assert context.cancelled is reserves
            answers.close()


class _Context:
    """A gRPC context's ``cancel``, remembered."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _MiB:
    """An answer of 1 MiB, as protobuf sizes it."""

    def ByteSize(self) -> int:  # noqa: N802 - protobuf's name
        return 1 << 20


def _holding_room(answers: int, *, input_bytes: int | None = None, answer=lambda i: _MiB()):
    """A ChunkStream's handler whose call holds room in the work budget (an ``at_end`` in its record, as
    tokenizer._admitted adds for a large request) and yields ``answers`` answers (``input_bytes``: its text's)."""
    from tokend.service.call_record import recording

    def behaviour(request, context):
        record = recording().__enter__()  # the record the front-end opened
        record.at_end(lambda: None)
        if input_bytes is not None:
            record.input_bytes = input_bytes
        for i in range(answers):
            yield answer(i)

    return behaviour


def test_a_stream_is_charged_for_its_unread_answers_only_while_room_is_wanted() -> None:
    """``make_memory_room`` ends a stream holding room once its answers have been unread for ``ROOM_UNREAD_SECONDS``
    in all while others wanted room (the gate's clock), without waiting for one answer to be unread for
    ``yield_after`` (a client reading just often enough, or reopening, kept the room that way); unread answers
    while nobody wanted room cost it nothing."""
    from tokend.server.idle_streams import ROOM_UNREAD_SECONDS, IdleStreams
    from tokend.service.call_record import recording

    wanted = [0.0]  # the gate's clock, moved by the test

    streams = IdleStreams(30, 1000.0, room_wanted=lambda: wanted[0])
    context = _Context()
    with recording():
        answers = streams._watched(_holding_room(10, answer=lambda i: i), None, context)
        assert next(answers) == 0  # unread: 0.6 s while room was wanted
        wanted[0] += 0.6
        time.sleep(0.05)
        assert streams.make_memory_room() is False
        assert next(answers) == 1  # read; its next answer unread for a long time, room not wanted
        time.sleep(0.1)
        assert streams.make_memory_room() is False
        wanted[0] += ROOM_UNREAD_SECONDS - 0.6  # then wanted: 1 s in all
        assert streams.make_memory_room() is True and context.cancelled
        answers.close()


def test_a_streams_room_charge_allows_a_second_for_each_mib_its_client_took() -> None:
    """A client reading its answers over a slow link leaves them unread while gRPC sends them, yet reads: it is
    charged beyond ``ROOM_UNREAD_SECONDS`` only for reading slower than the least rate unary answers get (1 MiB/s)."""
    from tokend.server.idle_streams import ROOM_UNREAD_SECONDS, IdleStreams
    from tokend.service.call_record import recording

    wanted = [0.0]

    streams = IdleStreams(30, 1000.0, room_wanted=lambda: wanted[0])
    context = _Context()
    with recording():
        answers = streams._watched(_holding_room(10), None, context)
        for _ in range(3):  # 2 MiB taken, each over 0.9 s while room was wanted; the third being sent
            next(answers)
            wanted[0] += 0.9
        assert streams.make_memory_room() is False  # charged 2.7 s, 2 of them paid by the 2 MiB
        wanted[0] += ROOM_UNREAD_SECONDS
        assert streams.make_memory_room() is True and context.cancelled
        answers.close()


def test_a_streams_reading_banks_at_most_a_second_against_a_later_stall() -> None:
    """The MiB credit pays for the unread time of the answers it comes with, and banks at most
    ``ROOM_CREDIT_SECONDS`` beyond: a client that read 10 MiB quickly while room was wanted and then stopped reading
    was charged nothing for the next ~10 s of it (up to 64 s: a 4 x 16 MiB answer), holding the room meanwhile."""
    from tokend.server.idle_streams import ROOM_CREDIT_SECONDS, ROOM_UNREAD_SECONDS, IdleStreams
    from tokend.service.call_record import recording

    wanted = [0.0]

    streams = IdleStreams(30, 1000.0, room_wanted=lambda: wanted[0])
    context = _Context()
    with recording():
        answers = streams._watched(_holding_room(20), None, context)
        for _ in range(11):  # 10 MiB taken, each in 0.01 s while room was wanted; the eleventh being sent
            next(answers)
            wanted[0] += 0.01
        wanted[0] += ROOM_UNREAD_SECONDS + ROOM_CREDIT_SECONDS - 0.5  # unread since: within the 1 s and the bank
        assert streams.make_memory_room() is False
        wanted[0] += 0.5
        assert streams.make_memory_room() is True and context.cancelled  # not ~8 s later
        answers.close()


def test_a_streams_credit_is_earned_by_as_many_bytes_as_its_text_at_most() -> None:
    """Issue 13 (hostile21): overlapping chunks repeat the text's ids, so a ChunkStream's answer may be many times its
    text (10x for max_tokens 1600, overlap 1450), and its client, reading 1.3 MiB/s of it while its sends waited on
    it, earned more credit than it was charged: it kept its worker's room for the whole answer (~30 s a stream)
    while large requests waited until their deadline. The credit is the least read rate of the text the room is
    for: no more MiB than the text's (the call record's input_bytes) earn it."""
    from tokend.server.idle_streams import ROOM_UNREAD_SECONDS, IdleStreams
    from tokend.service.call_record import recording

    wanted = [0.0]

    streams = IdleStreams(30, 1000.0, room_wanted=lambda: wanted[0])
    context = _Context()
    with recording():  # a 3 MiB text; its answers: 1 MiB each, 30 of them
        answers = streams._watched(_holding_room(30, input_bytes=3 << 20), None, context)
        next(answers)
        rounds = 0
        while not context.cancelled and rounds < 29:  # each answer unread 0.75 s while room is wanted: 1.3 MiB/s
            wanted[0] += 0.75
            streams.make_memory_room()
            if not context.cancelled:
                next(answers)
                rounds += 1
        assert context.cancelled, "read at 1.3 MiB/s of answers, 30 times its text's credit"
        # Its 3 MiB earned 3 s, each answer charged 0.75 s: ripe (1 s) by the 9th answer (2.25 s of credit left
        # after the 3rd, the floor at -1 s), not after its 30 MiB.
        assert rounds <= 3 + int((1 + ROOM_UNREAD_SECONDS) / 0.75) + 2, rounds
        answers.close()


def test_answers_taken_while_nobody_wanted_room_bank_no_credit() -> None:
    """A stream's bytes pay only for time others wanted room: a client that read 10 MiB while nobody did is charged
    in full for a later stall (crediting them too banked up to ``ROOM_CREDIT_SECONDS`` more of holding the room)."""
    from tokend.server.idle_streams import ROOM_UNREAD_SECONDS, IdleStreams
    from tokend.service.call_record import recording

    wanted = [0.0]

    streams = IdleStreams(30, 1000.0, room_wanted=lambda: wanted[0])
    context = _Context()
    with recording():
        answers = streams._watched(_holding_room(20), None, context)
        for _ in range(11):  # 10 MiB taken while nobody wanted room; the eleventh being sent
            next(answers)
        wanted[0] += ROOM_UNREAD_SECONDS - 0.25
        assert streams.make_memory_room() is False
        wanted[0] += 0.25
        assert streams.make_memory_room() is True and context.cancelled
        answers.close()
