"""A Tokenizer stream whose client sends nothing for ``--stream-idle-timeout`` seconds is ended, and its slot freed.

Why: a bidirectional stream (DecodeStream) holds one of its worker's ``STREAM_SLOTS`` while it is open
(stream_slots.py), and waits for its client's next message for as long as the client likes. Four streams that
sent one message and then nothing held every slot of a worker for ever (hostile round 3, repro 10): everyone
else's ChunkStream and DecodeStream got UNAVAILABLE. Now such a stream ends with DEADLINE_EXCEEDED once its
client has been silent for the timeout (30 s by default); a stream whose messages keep coming, however slowly,
never does. Each wait counts afresh from the moment the handler asks for the next message, so time the server
spends answering (or the client spends reading) is not counted against the client.

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), StreamSlots(), IdleStreams(30.0)])

How: grpcio's request iterator has no timeout — ``next`` blocks until a message arrives or the call ends — and
only the handler's own thread can end its call with a status of ours. So each stream gets a reader thread that
takes one message from the iterator when the handler asks for one (never more: nothing is read ahead or
queued), and the handler waits for it at most the timeout. Past it the handler raises ``StreamIdle``; the
status it sends closes the call, which wakes the reader (its ``next`` ends), and the reader leaves.

Why DEADLINE_EXCEEDED: it is the status the call would have had with a deadline of its own, gRPC's retry
guidance does not retry it automatically (a client that idles would only idle again), and it is not CANCELLED,
which reads as the client's own cancellation. Rejected: ``context.cancel()`` from a timer (no thread per
stream), because its client sees a bare CANCELLED with no word of why.

A client that sends a message just under the timeout, for ever, held its slot until its connection's end
(``--max-connection-age`` plus the grace period: 320 s by default) while other clients' streams got UNAVAILABLE.
So when every slot is taken, a new stream takes the slot of the stream that has waited longest for its client,
if that wait has lasted ``--stream-yield-after`` seconds (10 s by default): ``make_room`` ends it with
``StreamYielded`` (DEADLINE_EXCEEDED), and StreamSlots (stream_slots.py) gives its slot to the newcomer. A
stream whose client is silent keeps its slot while nobody else needs one; a stream whose messages come
within 10 s of each other (a generation of 0.1 token a second) never yields. Why this rather than a lifetime
or a minimum rate for every stream: a generation can last longer than the connection's age already allows,
and any rate a legitimate slow generation meets, a client holding slots meets as cheaply; yielding only
under contention takes nothing from a stream unless another stream is waiting for its slot.

A client that stops reading its answers is silent too: once the transport's windows are full its handler
waits in gRPC's send, not for a message (four such streams held every slot for ~3 MB of requests each). So
an answer gRPC has been sending for ``--stream-yield-after`` counts as the same silence, and ``make_room``
ends that stream by cancelling its call (its client sees CANCELLED when it reads: no status of ours can
reach a handler inside gRPC's send, nor a client that does not read).

A draining worker (SIGTERM) cannot wait for a stream's client either: a generation lasts minutes, a grace
period seconds. Open DecodeStreams held every drain for the whole grace period (20 s), and were then cut with
the process ("Socket closed"), a message their client had just sent unanswered. So ``drain`` (worker.py) ends
each stream with ``StreamDraining`` (UNAVAILABLE: its client retries, on a new stream that another worker or
replica answers) at once if it is waiting for its client, else the next time its handler asks for a message:
every message read from the client has been answered; one still in the transport is never read, and its
client, which got no answer to it, sends it again. A stream whose answer gRPC is sending finishes sending it
(its client is reading, or the grace period ends it). Rejected: letting busy streams run on until the grace
period (a generation seldom ends within it, and the drain would take the whole grace period again). Streams
are wrapped for this even with the idle timeout and yielding off. Measured (one worker, 3 open DecodeStreams,
SIGTERM): the worker ended after 20.2 s, the streams cut; now the streams end within 0.02-0.07 s and the
worker after 2.3-2.7 s (its ``--drain-flush`` of 2 s).

ChunkStream (one request, many answers) is tracked the same way (``_watched``: no request messages to wait
for): a client that took its first answer and then read nothing held its stream slot and its reservation of
the work budget (2 x an encode's working memory: 246 MiB for a 4 MB document) until its deadline or its
connection's age, while every other stream got UNAVAILABLE and every large request of the worker waited for
room until its own deadline. Its unread answer now yields its slot as a DecodeStream's does, and its room too:
the work gate's first waiting request asks ``make_memory_room`` (``WorkAdmission.room_maker``) once a second (an
answer that finds no room asks once), which cancels a stream holding room whose answer is unread now.

Which one, and when: each stream is charged the time others wanted room (the gate's ``room_wanted_seconds``: a large
request waiting, an answer refused in the last second) while its client left one of its answers unread, over the
stream's life, less a second for each MiB of answer its client took (the least read rate, as unary answers get;
a second of it at most banked for later, ``ROOM_CREDIT_SECONDS``; no more MiB than its text's earn it);
at ``ROOM_UNREAD_SECONDS`` (1 s), or one answer unread for ``--stream-yield-after``, it is ripe, and the one charged
most is cancelled. A single unread answer's ``--stream-yield-after`` alone let a client that
reopened its stream more often than that, or read an answer every few seconds, keep the room nearly all the time
(700 KB CountTokens beside it: 12-30 s). A client reading as fast as it can leaves nothing unread for long, and one
that reads slowly while nobody waits for room is charged nothing.

Not handled: a client that sends a message every few seconds on several streams still holds their slots
while it keeps sending (it costs it and the worker next to nothing); the idle timeout does not end a stream
whose client stops reading (only a new stream's need, for a slot or for room, does); a client that reopens its
stream before it has been charged 1 s holds the room for its whole-text passes and that second, each time (as
a client streaming large documents back to back and reading them does): large requests wait for it, small
requests' answers do not (the gate keeps room for them: ``WorkAdmission.answer_room_bytes``); client-streaming
RPCs with a single answer (tokend has none) are not wrapped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from tokend_api import SERVICE_NAME

from tokend.server.clock_queue import ClockQueue
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.server.unsent_answers import MIN_READ_BYTES_PER_SECOND
from tokend.server.wait_clock import MONOTONIC, WaitClock
from tokend.service.call_record import CallRecord, current_record
from tokend.service.errors import DeadlineExpired, RequestError, ServiceUnavailable

__all__ = ["DrainedStreams", "IdleStreams", "StreamDraining", "StreamIdle", "StreamYielded"]

_MESSAGE, _END, _FAILED, _YIELDED, _DRAINING = "message", "end", "failed", "yielded", "draining"
# Seconds a stream holding room in the work budget may leave its answers unread while others want room, over its
# life, before ``make_memory_room`` ends it, less a second for each MiB of answer its client has taken (the least
# read rate unary answers get: unsent_answers.MIN_READ_BYTES_PER_SECOND). Its client's reading, not the stream's
# age: a client reading as fast as it can left no send waiting 50 ms (a 4.4 MB document's 182 answers in 1.0-1.6 s),
# one reading an answer every 0.1 s left them unread 86 % of the time (stalls of 0.18 s), every 0.9 s 89 % (stalls
# of 1.8 s, up to 3.6 s); one reading 1 MiB/s or more over a slow link is never charged past it.
ROOM_UNREAD_SECONDS = 1.0
# The most the MiB credit banks beyond the unread time it pays for (the charge's floor is minus this). Unbounded, a
# client that read fast while others wanted room and then nothing kept the room a second longer for each MiB it had
# read (up to 64 s: a 4 x 16 MiB answer; 100 / 150 answers of a 4.4 MB document read: the waiting request answered
# 4.1-4.2 / 5.9 s after the client stopped, 2.1-2.3 / 2.7-3.0 s with the floor). A client that keeps reading 1 MiB/s or more stays at the floor, so it keeps
# its stream through a stall of up to 2 s while others want room.
ROOM_CREDIT_SECONDS = 1.0


class StreamIdle(DeadlineExpired):
    """The client of a stream sent nothing for the idle timeout; the stream was ended (DEADLINE_EXCEEDED)."""

    def __init__(self, timeout: float, received: int) -> None:
        RequestError.__init__(
            self, f"no message from the client for {timeout:g} s after {received} messages (stream_idle_timeout); "
            "the stream was ended to free its slot. Send the next message sooner, or open a new stream when there is more"
        )  # fmt: skip
        self.completed = received
        self.total = received + 1


class StreamYielded(DeadlineExpired):
    """The client of a stream had sent nothing for ``--stream-yield-after`` seconds or more when another stream
    needed its slot; the stream was ended (DEADLINE_EXCEEDED)."""

    def __init__(self, silent: float, yield_after: float, received: int) -> None:
        RequestError.__init__(
            self, f"no message from the client for {silent:.1f} s after {received} messages, while every stream slot of "
            f"this worker was taken and another stream needed one (stream_yield_after: {yield_after:g} s); the stream "
            "was ended to give its slot to that one. Send the next message sooner, or open a new stream when there is more"
        )  # fmt: skip
        self.completed = received
        self.total = received + 1


class StreamDraining(ServiceUnavailable):
    """The worker began draining (SIGTERM) while the stream waited for its client's next message, or before
    its handler asked for it; every message read before was answered (UNAVAILABLE: the client opens a new
    stream, which another worker or replica answers)."""

    def __init__(self, received: int) -> None:
        super().__init__(
            f"this worker is draining (shutting down): the stream was ended after answering the {received} messages "
            "it read; open a new stream (another worker or replica will answer) and send the rest there, from the "
            "first message not answered (a DecodeStream's ids of the bytes its last answer held back as pending too)"
        )  # fmt: skip


class DrainedStreams(NamedTuple):
    """The streams running when a worker began draining: ``ended`` DecodeStreams (at once, or after the message
    each was answering), ``finishing`` ChunkStreams left to send their whole answer."""

    ended: int
    finishing: int


class IdleStreams(UnaryInterceptor):
    wrap_streams = True
    wrap_unary = False

    def __init__(
        self, timeout: float, yield_after: float = 0.0, room_wanted: Callable[[], float] | None = None
    ) -> None:  # fmt: skip
        """``room_wanted``: the work gate's clock of the time others wanted room
        (``WorkAdmission.room_wanted_seconds``); None: every second counts."""
        self.timeout = timeout  # seconds; 0 = never
        self.yield_after = yield_after  # seconds; 0 = never
        self.room_wanted = room_wanted
        self._lock = threading.Lock()
        self._streams: set[IdleBoundedRequests] = set()  # the wrapped streams now running
        self._draining = False

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME or method.grpc_type not in ("bidi_stream", "server_stream"):
            return behaviour(request, context)
        if method.grpc_type == "server_stream":  # ChunkStream: one request, answers its client may leave unread
            return self._watched(behaviour, request, context)
        # Wrapped even with no timeout and no yielding: `drain` ends a stream's wait for its client.
        return self._bounded(behaviour, request, context)

    def drain(self) -> DrainedStreams:
        """The worker is draining: every DecodeStream waiting for its client's next message ends now with
        ``StreamDraining`` (UNAVAILABLE), every other one the next time its handler asks for one (a message
        being answered is answered first); a stream whose answer gRPC is sending is left to finish it, and so is
        every ChunkStream (one request: it ends with its answer). How many of each were running."""
        with self._lock:
            self._draining = True
            streams = list(self._streams)
        decode_streams = [stream for stream in streams if stream.reads_requests]
        for stream in decode_streams:
            stream.end_draining()
        return DrainedStreams(ended=len(decode_streams), finishing=len(streams) - len(decode_streams))

    def make_room(self) -> bool:
        """End the stream that has waited longest for its client, if that wait has lasted ``yield_after`` seconds;
        False if none has (or yielding is off). Its slot comes free once its handler has returned."""
        return self._end_longest(lambda stream: stream.silent_for())

    def make_memory_room(self) -> bool:
        """End a stream holding room whose client leaves an answer unread now, if its answers have been unread for
        ``ROOM_UNREAD_SECONDS`` in all while others wanted room (``room_wanted``) beyond a second a MiB it took
        (``room_charge``), or this one for ``yield_after`` (its call is cancelled): the one charged most; False if
        none is (or yielding is off). Called by the work gate
        (``WorkAdmission.room_maker``) for a large request that has waited for room, or an answer that found none: a
        stream's reservation is given back when its call ends. Streams waiting for their client's next message are
        left alone (they hold no answer, and a DecodeStream's messages reserve only while they are answered)."""
        if self.yield_after <= 0:
            return False
        with self._lock:
            streams = list(self._streams)
        # Only a stream whose call holds room: cancelling one that reserved nothing (a small document's
        # ChunkStream) gives none back, and the large request would end another every second it waits.
        charged = [
            (stream.room_charge(), stream)
            for stream in streams
            if stream.holds_room() and stream.unread_for() > 0
        ]
        for unread, stream in sorted(charged, key=lambda pair: pair[0], reverse=True):
            if stream.end_unread(0.0 if unread >= ROOM_UNREAD_SECONDS else self.yield_after):
                return True
        return False

    def _end_longest(self, seconds: Callable[[IdleBoundedRequests], float]) -> bool:
        """End the stream with the largest ``seconds(stream)``, if that is ``yield_after`` or more (the next one
        when it ended meanwhile); False if none is (or yielding is off)."""
        if self.yield_after <= 0:
            return False
        with self._lock:
            streams = list(self._streams)
        waits = sorted(((seconds(stream), stream) for stream in streams), key=lambda pair: pair[0], reverse=True)
        for waited, stream in waits:
            if waited < self.yield_after:
                return False
            if stream.end_silent(self.yield_after):
                return True
        return False

    def _watched(self, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        """A server-streaming call (ChunkStream): its answers tracked as ``_bounded`` tracks them, so that
        ``make_room`` can end it once its client has left an answer unread for ``yield_after``, and
        ``make_memory_room`` once it is charged ``ROOM_UNREAD_SECONDS`` (cancelled); it has no request messages to
        wait for (no reader thread, no idle timeout)."""
        watched = IdleBoundedRequests(iter(()), None, cancel=getattr(context, "cancel", None),
                                       room_wanted=self.room_wanted, reads_requests=False)
        with self._lock:
            self._streams.add(watched)
        yield from self._tracked(watched, behaviour(request, context))

    def _bounded(self, behaviour: Callable[[Any, Any], Iterator[Any]], requests: Any, context: Any) -> Iterator[Any]:
        bounded = IdleBoundedRequests(requests, self.timeout or None, cancel=getattr(context, "cancel", None))
        with self._lock:
            self._streams.add(bounded)
            draining = self._draining  # a stream that came in as `drain` ran: it was not among those it ended
        if draining:
            bounded.end_draining()
        yield from self._tracked(bounded, behaviour(bounded, context))

    def _tracked(self, stream: IdleBoundedRequests, answers: Iterator[Any]) -> Iterator[Any]:
        """The stream's answers, each marked as being sent until gRPC asks for the next; at the end the stream is
        closed and forgotten."""
        stream.record = current_record()  # the call's (its reservation, if any, is given back at its end)
        try:
            for answer in answers:
                # From here until gRPC asks for the next answer, it is sending this one: a client that does
                # not read it keeps the handler here once the transport's windows are full.
                stream.sending(True)
                yield answer
                stream.sending(False, answer)
        finally:
            close = getattr(answers, "close", None)
            if close is not None:  # as `yield from` would: the inner handlers' `finally` first
                close()
            stream.close()
            with self._lock:
                self._streams.discard(stream)


class IdleBoundedRequests:
    """The request messages of one stream; ``next`` raises ``StreamIdle`` when none came within ``timeout`` of
    ``clock`` (None: no timeout), ``StreamYielded`` when ``end_silent`` ended the stream while it waited,
    ``StreamDraining`` once ``end_draining`` was called (at once if it was waiting)."""

    def __init__(
        self, requests: Iterator[Any], timeout: float | None, cancel: Callable[[], Any] | None = None,
        room_wanted: Callable[[], float] | None = None, reads_requests: bool = True, clock: WaitClock = MONOTONIC,
    ) -> None:  # fmt: skip
        self._requests = requests
        # The silences (waiting_since, sending_since) are read from it and the handler's wait is on it: a test
        # drives it (tests/support/manual_clock.py); the gate's room_wanted is a clock of its own.
        self._clock = clock
        self.reads_requests = reads_requests  # False: a ChunkStream's (``_watched``), which has none to read
        self._timeout = timeout
        self._cancel = cancel  # cancels the call (the gRPC context's cancel)
        self._room_wanted = room_wanted if room_wanted is not None else time.monotonic  # the gate's clock
        # room_charge of the answers taken since the call began: room_wanted seconds unread less their MiB credit,
        # never below -ROOM_CREDIT_SECONDS
        self._room_charged = 0.0
        self._credited_bytes = 0  # of the answers taken that earned credit: the stream's text's bytes at most
        self._room_wanted_at_send: float | None = None  # room_wanted when gRPC began sending the answer not yet taken
        self.record: CallRecord | None = None  # the call's record (IdleStreams sets it)
        self._lock = threading.Lock()
        self._waiting_since: float | None = None  # monotonic time the handler asked for a message not yet taken
        self._sending_since: float | None = None  # monotonic time gRPC began sending an answer not yet taken
        self._yielded_after = 0.0  # seconds of silence when end_silent ended the stream
        self._asked = threading.Semaphore(0)  # released once for each message the handler asks for
        self._answers: ClockQueue[tuple[str, Any]] = ClockQueue(clock)  # (kind, message or exception)
        self._reader: threading.Thread | None = None
        self._closed = False
        self._draining = False
        self._received = 0

    def __iter__(self) -> IdleBoundedRequests:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, name="tokend-stream-reader", daemon=True)
            self._reader.start()
        with self._lock:
            if self._draining:  # under the lock end_draining takes: it sees this wait, or this sees it
                self.close()
                raise StreamDraining(self._received)
            self._waiting_since = self._clock.now()
        self._asked.release()
        try:
            kind, value = self._answers.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise StreamIdle(self._timeout or 0.0, self._received) from None
        finally:
            with self._lock:
                self._waiting_since = None
        if kind == _MESSAGE:
            self._received += 1
            return value
        self.close()
        if kind == _END:
            raise StopIteration
        if kind == _YIELDED:
            raise StreamYielded(self._yielded_after, value, self._received)
        if kind == _DRAINING:
            raise StreamDraining(self._received)
        raise value

    def silent_for(self) -> float:
        """Seconds the handler has waited for the client's next message, or for the client to take its answer
        (0: it is doing neither)."""
        with self._lock:
            since = self._waiting_since if self._waiting_since is not None else self._sending_since
            return 0.0 if since is None else self._clock.now() - since

    def holds_room(self) -> bool:
        """Whether the call holds room in the work budget until it ends (its record has actions waiting for the
        end: tokenizer._admitted's reservation)."""
        return self.record is not None and self.record.holds_memory

    def unread_for(self) -> float:
        """Seconds gRPC has been sending an answer its client has not taken (0: none)."""
        with self._lock:
            since = self._sending_since
            return 0.0 if since is None else self._clock.now() - since

    def room_charge(self) -> float:
        """Seconds of ``room_wanted`` while the client left an answer of this stream unread, over the call's life,
        less a second for each MiB of answer its client took while room was wanted (the least read rate; banked
        ``ROOM_CREDIT_SECONDS`` at most; earned by as many bytes as its text's at most): what ``make_memory_room``
        ends a stream holding room for, at ``ROOM_UNREAD_SECONDS``."""
        clock = self._room_wanted()  # outside the lock: the gate's clock has a lock of its own
        with self._lock:
            since = self._room_wanted_at_send
            return self._room_charged + (0.0 if since is None else clock - since)

    def sending(self, sending: bool, answer: Any = None) -> None:
        """gRPC is sending an answer (True) or has sent ``answer`` (False)."""
        clock = self._room_wanted()
        with self._lock:
            self._sending_since = self._clock.now() if sending else None
            since, self._room_wanted_at_send = self._room_wanted_at_send, (clock if sending else None)
            if sending or since is None or clock == since:
                return
        # Sent while room was wanted: its bytes pay for that time (a ChunkStream's; counted only then, as the charge
        # is: protobuf's ByteSize walks the message, ~0.2 ms for 28 KB of chunks), and bank little beyond it.
        size = getattr(answer, "ByteSize", None)
        taken = size() if size is not None and not self.reads_requests else 0
        text_bytes = self.record.input_bytes if self.record is not None else 0
        with self._lock:
            if text_bytes:
                # Up to the text's bytes over the call (the service records them as it starts; 0: none recorded, and
                # an empty text holds no room): overlapping chunks repeat the text's ids, and the room is the text's,
                # not the answer's. A client reading 1.3 MiB/s of a 3.7 MB document's answer of 10x its text
                # (max_tokens 1600, overlap 1450) was credited more than it was charged, and held its worker's room
                # ~30 s a stream while large requests waited for it until their deadline (issue 13, hostile21).
                taken = min(taken, max(0, text_bytes - self._credited_bytes))
                self._credited_bytes += taken
            charged = self._room_charged + (clock - since) - taken / MIN_READ_BYTES_PER_SECOND
            self._room_charged = max(charged, -ROOM_CREDIT_SECONDS)

    def end_silent(self, yield_after: float) -> bool:
        """End the stream if its handler has waited ``yield_after`` seconds or more for the next message (it
        raises ``StreamYielded``), or gRPC has been sending its answer that long (the call is cancelled)."""
        with self._lock:
            if self._closed:
                return False
            if self._waiting_since is None:
                if not self._end_unread(yield_after):
                    return False
            else:
                silent = self._clock.now() - self._waiting_since
                if silent < yield_after:
                    return False
                self._yielded_after = silent
                self._waiting_since = None  # ended once
                self._answers.put((_YIELDED, yield_after))
                return True
        self._cancel_call()
        return True

    def end_unread(self, after: float) -> bool:
        """Cancel the call if gRPC has been sending its answer for ``after`` seconds or more (0: at all)."""
        with self._lock:
            if self._closed or not self._end_unread(after):
                return False
        self._cancel_call()
        return True

    def _end_unread(self, after: float) -> bool:
        """Whether gRPC has been sending the answer for ``after`` seconds; if so the stream is marked ended (under the
        lock: once), and the caller cancels the call after releasing it."""
        if not self._unread_for(after):
            return False
        self._sending_since = None  # ended once
        self._closed = True
        return True

    def _cancel_call(self) -> None:
        # An answer its client has not taken: the handler waits in gRPC's send, where no status of ours can
        # reach it (and a client that does not read would not see one). Cancelling the call ends the send,
        # and the handler with it; outside the lock, which the handler's thread takes as the send returns.
        self._cancel()  # type: ignore[misc]

    def end_draining(self) -> None:
        """The worker is draining: the handler's wait for the next message ends now, or its next ``next``
        raises at once. A message the reader has handed over already is answered first (it is in the queue
        before the end), one still in the transport is never read."""
        with self._lock:
            self._draining = True
            if self._waiting_since is not None:
                self._waiting_since = None  # ended once
                self._answers.put((_DRAINING, None))

    def _unread_for(self, yield_after: float) -> bool:
        return (
            self._sending_since is not None and self._cancel is not None
            and self._clock.now() - self._sending_since >= yield_after
        )  # fmt: skip

    def close(self) -> None:
        """No more messages will be asked for: a reader waiting to be asked leaves (one inside the iterator
        leaves when the call ends)."""
        self._closed = True
        self._asked.release()

    def _read(self) -> None:
        while True:
            self._asked.acquire()
            if self._closed:
                return
            try:
                message = next(self._requests)
            except StopIteration:
                self._hand_over(_END, None)
                return
            except BaseException as exc:  # the call ended under it (grpc.RpcError): the handler raises it
                self._hand_over(_FAILED, exc)
                return
            self._hand_over(_MESSAGE, message)

    def _hand_over(self, kind: str, value: Any) -> None:
        # What came from the client ends its silence here, not when the handler wakes to take it, and under
        # the lock end_silent takes: a stream is chosen to yield before its message (it ends without it) or
        # not at all. Chosen after (the handler not yet awake), it answered the message and then ended, its
        # client working, while the newcomer waited for the slot.
        with self._lock:
            self._waiting_since = None
            self._answers.put((kind, value))
