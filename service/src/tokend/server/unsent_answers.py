"""The answers of unary Tokenizer calls that are built but not yet sent: their memory is bounded, and so is the
time they may hold it.

Why: grpcio queues a unary answer with its status and returns; HTTP/2 flow control keeps it queued while the
client does not read (a window it never opens). Three things held memory there without a bound:

- **a small request's large answer.** The work gate (service/admission) reserves nothing for a request estimated
  at 4 MiB or less, yet such a decode of long tokens answers ~1.3 MB for ~30 KB of request: a client that opened
  a thousand such calls and read nothing left a worker with gigabytes of queued answers. So every answer is
  serialized here, on the handler thread, and one of ``FLOOR_BYTES`` or more whose call reserved nothing takes
  room for what it holds (``HELD_BYTES_PER_ANSWER_BYTE``) in the work gate (``WorkAdmission.hold``: when it
  fits, else UNAVAILABLE at once), given back once gRPC has finished the call (``CallRecord.end_after``).
  Answers below the floor (every CountTokens, a 1 KB Encode) take no lock: they are only counted (below).
- **an answer never read.** A call's reservation (an answer's, or a large request's working memory) was held
  until its connection's end: ``max_connection_age`` + grace, ~320 s, during which every other large call
  waited for room or was refused. Now a call whose answer has not been sent ``send_seconds`` plus one second per
  ``MIN_READ_BYTES_PER_SECOND`` of it after its handler returned is cancelled (``grpc.RpcContext.cancel``: an
  RST_STREAM, the queued answer dropped), which ends the call and gives its memory back. The client sees
  CANCELLED: its answer can no longer be sent with a status (the status waits behind the answer's data). While
  its connection is sending answers (one ended, or its peer acknowledges bytes at half the least rate: the
  kernel's count, ``AckedBytes``), the call has the connection's deadline instead, which counts every answer the
  connection holds (``SendDeadlines``): they share its bandwidth.

- **answers never read, while others want their room.** The room answers take went first come, first served: a
  client leaving a 1.28 MB Decode a second unread kept ~8 of them held until their deadline (~11 s), the 32 MiB
  kept for answers beside a large stream, and 98 of 557 other clients' Decodes of 1.28 MB were refused beside it.
  So an answer that finds no room (or a large request kept out by answers) has calls cancelled for it
  (``SendDeadlines.make_room``): the oldest holding room whose answers have been unread ``UNREAD_ROOM_SECONDS``
  (1 s) on connections that have shown no reading for as long (no answer sent; acknowledgements, read again then,
  under half the least rate), CANCELLED and counted as at their deadline. A client on a slow link that reads at
  half the least rate or more keeps its answers, however old; one reading slower, or over a socket whose
  acknowledgements cannot be read and with no answer ended in that second, loses them when others want room.

- **many small answers never read.** An answer under ``FLOOR_BYTES`` holds no room, yet an unread call costs its
  answer twice over and its stream's state in gRPC (~20 KiB): a client opening streams it never reads (their
  number is not bounded by HTTP/2 or grpcio) took a worker +817 MiB with 16,000 Decodes answering just under
  16 KiB, held until the connections' age. So the unsent answers that hold no room are counted
  (``UnheldAnswers``: two counters, no lock), ``MAX_UNHELD_ANSWERS`` at most per worker; past them every answer,
  however small, holds ``STREAM_BYTES`` plus its bytes as a large one does, and is watched.

Only calls that hold memory are watched (their handler thread is free by then): one thread per worker wakes
at the earliest deadline. Streams are not handled here: their handler waits in gRPC's send (idle_streams.py).

A watched call may fail after its handler has answered: cancelled here, or by its client (an RST_STREAM, its
deadline) before its answer was sent. So its request log line and ``grpc_server_handled_total`` wait for its end
(``CallOutcome``, the record's ``outcome_later``) and say the status its client got (``end_status``); the other
calls' records are written when their handler returns, as before, at no cost here. A worker that ends with such
calls unsent (draining: their clients had not read them by the flush's end) writes theirs then (``abandon``): the
connection closes with the process, and its client sees UNAVAILABLE.

    answers = UnsentAnswers(admission, send_seconds=10.0)
    interceptors=[..., ErrorInterceptor(), answers, AvailabilityInterceptor(...), ...]  # inside the call record
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import grpc
from tokend_api import SERVICE_NAME

from tokend.logs import log_event
from tokend.server.acked_bytes import AckedBytes
from tokend.server.call_outcome import CallOutcome, end_status, ended_by_client
from tokend.server.wait_clock import MONOTONIC, WaitClock
from tokend.service.admission import WorkAdmission
from tokend.service.call_record import current_record

__all__ = [
    "UnsentAnswers", "SendDeadlines", "UnheldAnswers", "FLOOR_BYTES", "HELD_BYTES_PER_ANSWER_BYTE", "MIN_READ_BYTES_PER_SECOND",
    "MAX_UNHELD_ANSWERS", "STREAM_BYTES", "UNREAD_ROOM_SECONDS",
]

_log = logging.getLogger("tokend.server.unsent_answers")

# Answers of at least this many bytes take room in the work gate: ~5,000 token ids, or 16 KiB of decoded text.
# Below it an unread answer costs about what its call's own state in gRPC does (a stream, its metadata).
FLOOR_BYTES = 16 << 10
# What an unsent answer of n bytes holds: grpcio keeps the serialized bytes until the send completes, gRPC core
# its own copy, and the allocator some slack: 3.3-3.4 MiB of a worker's RSS per unread 1.28 MB answer (100 and
# 200 such decodes with the gate off; the work gate counts a large decode's answer bytes 3 times too).
HELD_BYTES_PER_ANSWER_BYTE = 3
# What an unread unary call holds besides its answer: its stream's state in gRPC core and grpcio's (4,000 unread
# CountTokens: +20.0 KiB a call).
STREAM_BYTES = 20 << 10
# Unsent answers under FLOOR_BYTES holding no room, per worker: ~52 KiB each unread (just under 16 KiB of answer),
# ~52 MiB together. Past them small answers hold room too.
MAX_UNHELD_ANSWERS = 1024
# A client reading slower than this (on average, over its answer) has its call cancelled: 16 s more for a
# 16 MiB answer (the default max_message_bytes), where a client on the same network takes milliseconds.
MIN_READ_BYTES_PER_SECOND = 1 << 20
# A connection whose peer acknowledged at least this many bytes a second since its call was last looked at is
# reading (SendDeadlines), though none of its answers has ended: half the least rate, for acknowledgements come in
# bursts (a reader's 16 KiB reads, delayed ACKs) and a look spans only LOOK_SECONDS. A peer that reads nothing
# acknowledges next to nothing (a PING, a HEADERS frame: tens of bytes).
READING_BYTES_PER_SECOND = MIN_READ_BYTES_PER_SECOND // 2
# How long before a call's own deadline its connection's bytes acknowledged are first read, to compare with at it.
LOOK_SECONDS = 0.5
# A rate over less than this is not judged (a call whose deadline came sooner than that after it was made).
_MIN_RATE_SECONDS = 0.1
# One reading of a connection serves the calls looked at within this.
_ACKED_FRESH_SECONDS = 0.05
# An answer unread this long, on a connection that has shown no reading for as long (no answer sent, its peer
# acknowledging under READING_BYTES_PER_SECOND), gives its room to an answer (or a large request) that finds none
# (``SendDeadlines.make_room``): a reading client's answer holds room for milliseconds, one on a slow link shows
# its reading in the acknowledgements, which need two readings _MIN_RATE_SECONDS apart or more. The unread
# answers a client may keep in the room while others want it: what it has made in the last second.
UNREAD_ROOM_SECONDS = 1.0
# When a call holding room is first looked at, for a reading of its connection's acknowledgements that
# ``make_room`` compares with (its look before its own deadline comes ~10 s after it was made).
_EARLY_LOOK_SECONDS = UNREAD_ROOM_SECONDS / 2
# The connections whose acknowledgements one ``make_room`` reads again (0.15-0.3 ms each, on the caller's thread);
# the calls of the others are kept. Those whose latest reading showed no reading are read first: slow readers ahead
# of a client reading nothing must not use them all at each ask (a large request asks once a second).
_MAX_READINGS_FOR_ROOM = 8
# What a heap entry of SendDeadlines is for: the call's deadline, the look LOOK_SECONDS before it, the early look.
_DEADLINE, _LOOK, _EARLY_LOOK = "deadline", "look", "early look"


class SendDeadlines:
    """Cancels calls whose answer has not been sent by their deadline (thread-safe; its thread starts with the
    first call watched).

    The calls of one connection (``context.peer()``) share its bandwidth, and gRPC sends their answers side by
    side, not one after the other: a call's answer may be the last one sent of all those its connection holds.
    So a call whose own deadline passes while its connection is sending answers gets its connection's deadline:
    ``seconds`` after the connection's latest call plus the ``sending_seconds`` of every answer it held unsent
    then. Sending: since the call was made (or last looked at) one of the connection's watched answers ended, or
    its peer acknowledged ``READING_BYTES_PER_SECOND`` (half the least rate) or more: with ``acked_bytes``, the
    connection's bytes acknowledged are read ``LOOK_SECONDS`` before the call's own deadline and again at it and
    at each later look (the kernel's count; answers side by side may all be midway, none ended, more so when CPU
    load makes them close together: 8 Decodes of 1 MiB read at 1.5 MiB/s beside two busy loops, 1 call in 8
    cancelled in 4 of 12 runs with the ended answers alone, 0 of 14 now). A reading that fails (no socket found, a unix
    socket, another platform) counts as no progress: only an ended answer tells, as before. A client reading at
    the least rate keeps its answers however many it has in flight (with its own deadline only, 24 Decodes of
    1 MiB on one connection read at 1.5 MiB/s: 19 cancelled, 5 answered); a connection that sends nothing has each
    call cancelled at its own deadline (given the connection's anyway, 100 Decodes never read held the work budget
    91.5 s instead of 8.6 s). Behind a proxy, the clients it multiplexes on one connection are that connection.

    How long the connection's deadline may keep a call is limited (``_Watched.limit``, set when its own deadline
    has passed): its own deadline plus ``seconds``, plus what the other answers it shares the connection with take
    at the least rate — those unsent when it was made and those made up to its own deadline; then each one made
    later for what it can delay the call's side by side: its size, at most the call's own. Without it each new
    call of the connection pushed the deadline further, and a client that read some answers kept an unread one
    (its reservation) until the connection's age: a 42 MB reservation held 55.3 s (an age of 60 s) while its
    client read a 25 KB Decode a second, where one reading nothing lost it at 2.5 s (``--answer-send-seconds 2``);
    now at 4.5 s. Side by side answers still get their time, each counting the others: 24 Decodes of 1 MiB at
    1 MiB/s, 24 of 24 answered in 24.0 s (``--answer-send-seconds`` 10 and 1), and so does a large answer beside a
    pipeline of smaller ones made after its own deadline (a limit fixed then, counting none of them, cancelled it:
    review09). A call with a small answer (a large request's reservation) gains next to nothing from those.

    ``clock``: where the times are read and waited for (``MONOTONIC``; a test passes one it drives, so no stall of
    the machine decides which deadline comes first)."""

    def __init__(
        self, on_cancel: Callable[[], None] | None = None, *, acked_bytes: AckedBytes | None = None,
        clock: WaitClock = MONOTONIC,
    ) -> None:  # fmt: skip
        self._condition = threading.Condition()
        # Every time here is read from it and every wait is on it: a test drives it (tests/support/manual_clock.py)
        self._clock = clock
        # (when, arrival, call, what then: _DEADLINE, _LOOK before it, or _EARLY_LOOK) of the calls watched
        self._heap: list[tuple[float, int, _Watched, str]] = []
        self._order = itertools.count()
        self._connections: dict[str, _Connection] = {}  # peer -> its calls watched now
        # the calls watched whose end gRPC has not reported yet, oldest first (``make_room`` takes them in that order)
        self._unended: OrderedDict[_Watched, None] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._abandoned = False  # the worker is ending: a call watched from now on is told UNAVAILABLE at once
        self.cancelled = 0  # calls cancelled so far
        # Told of each cancel (the worker's tokend_answers_cancelled_total), before it: the call's own log line and
        # handled count say CANCELLED once it has ended (``outcome``).
        self._on_cancel = on_cancel
        self._acked_bytes = acked_bytes  # None: sending means an answer ended (and on any platform)

    def end_after(
        self, context: Any, seconds: float, *, sending_seconds: float = 0.0, outcome: CallOutcome | None = None,
        held_bytes: int = 0,
    ) -> Callable[[Callable[[], None]], bool]:  # fmt: skip
        """A ``CallRecord.end_after`` for the call of ``context``: runs the record's end actions once gRPC has
        finished the call (``add_callback``), and cancels the call if that has not happened ``seconds`` plus its
        ``sending_seconds`` (what its answer takes at the least read rate) after, or by its connection's deadline
        while the connection is sending answers. ``outcome`` is told the status the call ended with first.
        ``held_bytes``: what the call holds of the work gate until it ends (``make_room`` may cancel it for them;
        0: never)."""

        def register(actions: Callable[[], None]) -> bool:
            peer = context.peer()
            with self._condition:
                abandoned = self._abandoned
                if not abandoned:
                    connection = self._connections.get(peer)
                    if connection is None:
                        connection = self._connections[peer] = _Connection(peer)
                    connection.watched += 1
                    connection.sending_seconds += sending_seconds
                    connection.made_seconds += sending_seconds
                    connection.made_count += 1
                    watched = _Watched(context, connection, outcome, seconds, sending_seconds, held_bytes)
            if abandoned:  # answered after ``abandon``: the worker is ending, the connection closes with it
                if outcome is not None:
                    outcome.end(grpc.StatusCode.UNAVAILABLE)
                return False

            def ended() -> None:
                by_client = ended_by_client(context)
                with self._condition:
                    self._unended.pop(watched, None)
                    cancelled_here = watched.context is None
                    if not cancelled_here:
                        watched.context = None
                        if not by_client:  # sent: its connection reads (a cancel by its client shows nothing)
                            connection.ended += 1
                            connection.read_at = self._clock.now()
                    self._forget(connection, sending_seconds)
                try:
                    if outcome is not None:
                        outcome.end(end_status(context, cancelled_here=cancelled_here))
                finally:
                    actions()

            if not context.add_callback(ended):  # over already (its client cancelled it): the actions run at once
                with self._condition:
                    self._forget(connection, sending_seconds)
                if outcome is not None:
                    outcome.end(end_status(context, cancelled_here=False))
                return False
            with self._condition:
                if watched.context is None:  # ended already (gRPC's thread, since add_callback)
                    return True
                self._unended[watched] = None
                now = watched.made = self._clock.now()
                connection.deadline = max(connection.deadline, now + seconds + connection.sending_seconds)
                own_deadline = watched.own_deadline = now + seconds + sending_seconds
                if self._acked_bytes is None:
                    heapq.heappush(self._heap, (own_deadline, next(self._order), watched, _DEADLINE))
                else:  # first a look at its connection's bytes acknowledged, to compare with at its deadline
                    look = max(now, own_deadline - LOOK_SECONDS)
                    heapq.heappush(self._heap, (look, next(self._order), watched, _LOOK))
                    if held_bytes > 0 and now + _EARLY_LOOK_SECONDS < look:  # a reading for ``make_room``'s rate
                        heapq.heappush(self._heap, (now + _EARLY_LOOK_SECONDS, next(self._order), watched, _EARLY_LOOK))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="tokend-unsent-answers", daemon=True)
                    self._thread.start()
                self._condition.notify()
            return True

        return register

    def abandon(self) -> int:
        """Tell the outcome of every call watched whose end has not come (the worker is about to end; its
        connections close with it): UNAVAILABLE, what its client sees when the connection closes, or CANCELLED if
        it was cancelled here (its client was sent that). Answers how many. gRPC may still report an end meanwhile:
        an outcome is told once, the first wins.

        Why: their records (the request log line, grpc_server_handled_total) wait for their end, which a worker
        that ends never sees; they were lost, the call counted started and never handled. A call answered after
        this (a handler that returned as the worker ends) is told UNAVAILABLE at once, for the same reason."""
        with self._condition:
            unended = [(watched.outcome, watched.context is None) for watched in self._unended]
            self._unended.clear()
            self._abandoned = True
        for outcome, cancelled_here in unended:
            if outcome is not None:
                outcome.end(grpc.StatusCode.CANCELLED if cancelled_here else grpc.StatusCode.UNAVAILABLE)
        return len(unended)

    def _forget(self, connection: _Connection, sending_seconds: float) -> None:
        connection.watched -= 1
        connection.sending_seconds -= sending_seconds
        if not connection.watched:
            del self._connections[connection.peer]

    def _run(self) -> None:
        while True:
            with self._condition:
                self._clock.wait_until(self._condition, self._earliest)
                deadline, _, watched, kind = heapq.heappop(self._heap)
                if watched.context is None:
                    continue
                connection = watched.connection
            # The connection's bytes acknowledged (a query of the kernel: outside the lock), at each look.
            acked = self._acked_of(connection) if self._acked_bytes is not None else None
            kept, kept_by_acks = None, False  # (seconds) rescheduled, not cancelled; by the acknowledgements alone
            with self._condition:
                context = watched.context
                if context is None or kind == _EARLY_LOOK:  # ended meanwhile; the reading was all an early look is for
                    continue
                if kind == _LOOK:  # LOOK_SECONDS before its own deadline: what to compare with then
                    watched.acked = acked
                    heapq.heappush(self._heap, (watched.own_deadline, next(self._order), watched, _DEADLINE))
                    continue
                read_rate = _rate(watched.acked, acked)
                if acked is not None:
                    watched.acked = acked
                # sending: an answer of its connection ended since it was last looked at, or its peer acknowledged
                # bytes at half the least rate or more meanwhile (answers side by side, none of them ended yet)
                sending = connection.ended > watched.ended_seen or (
                    read_rate is not None and read_rate >= READING_BYTES_PER_SECOND)
                if sending:  # the connection's deadline, to its limit
                    made = connection.made_seconds - watched.made_seconds_seen
                    if watched.limit is None:  # its own deadline: its connection's answers held then or made since
                        others = watched.held_seconds - watched.own_seconds + made
                        watched.limit = deadline + watched.seconds + others
                    else:  # and those made since it was last looked at, each what it can delay this one side by
                        # side (its size, at most this one's: the sum and the count times its own both bound it)
                        made_count = connection.made_count - watched.made_count_seen
                        watched.limit += min(made, made_count * watched.own_seconds)
                    watched.made_seconds_seen, watched.made_count_seen = connection.made_seconds, connection.made_count
                    later = min(connection.deadline, watched.limit)
                    if later > deadline:
                        kept_by_acks = connection.ended == watched.ended_seen  # what no ended answer would keep
                        watched.ended_seen = connection.ended
                        heapq.heappush(self._heap, (later, next(self._order), watched, _DEADLINE))
                        kept = later - deadline
                if kept is None:
                    watched.context = None  # its end, which this cancel brings, is not one of its connection's sends
                    self.cancelled += 1
            if kept is not None:
                if kept_by_acks:
                    log_event(_log, "answer_kept_reading", level=logging.DEBUG, peer=connection.peer[:200],
                              read_bytes_per_second=round(read_rate or 0), more_seconds=round(kept, 3))  # fmt: skip
                continue
            self._cancel(watched, context, late_seconds=round(self._clock.now() - deadline, 3),
                         read_bytes_per_second=None if read_rate is None else round(read_rate))

    def _earliest(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def _acked_of(self, connection: _Connection) -> tuple[float, int] | None:
        """(clock's now, bytes its peer acknowledged), None when that cannot be read; one reading serves the
        calls of a connection looked at within ``_ACKED_FRESH_SECONDS`` (many calls made together look together)."""
        now = self._clock.now()
        latest = connection.acked
        if latest is not None and now - latest[0] < _ACKED_FRESH_SECONDS:
            return latest
        try:
            acked = self._acked_bytes.of(connection.peer) if self._acked_bytes is not None else None
        except Exception:  # (AckedBytes answers None itself) this thread must go on watching: as if unreadable
            acked = None
        reading = None if acked is None else (now, acked)
        with self._condition:  # (a race with another look only re-reads)
            if reading is None:
                connection.acked = connection.acked_before = None
                return None
            if latest is not None and now - latest[0] >= _MIN_RATE_SECONDS:
                connection.acked_before = latest
            connection.acked = reading
            rate = _rate(connection.acked_before, reading)
            if rate is not None and rate >= READING_BYTES_PER_SECOND:
                connection.read_at = max(connection.read_at, now)
        return reading

    def make_room(self, wanted_bytes: int) -> int:
        """Cancel calls holding room whose answers have sat unread ``UNREAD_ROOM_SECONDS`` on connections that have
        shown no reading for as long (no answer sent, acknowledgements under half the least rate: the connection's
        bytes acknowledged are read again now, at most ``_MAX_READINGS_FOR_ROOM`` connections a time), oldest first,
        until they held ``wanted_bytes``; answers the bytes they held (0: none was). Each is cancelled as at its
        deadline: CANCELLED, counted (``cancelled``, ``on_cancel``) and logged (``answer_not_read``, with
        ``room_wanted_bytes``); its room comes back once gRPC has ended it (milliseconds). Called by the work gate
        (``WorkAdmission.unread_room_maker``) for an answer that finds no room, or a large request kept out by
        answers.

            freed = deadlines.make_room(4 << 20)  # what the calls it cancelled held: two unread 1.28 MB Decodes, ~7.7 MB

        Why: the room answers take (``WorkAdmission.hold``) went first come, first served; a client leaving a 1.28
        MB Decode a second unread kept ~8 answers of 3.84 MiB held until their deadline (~11 s), the 32 MiB kept
        for answers beside a large stream, and other clients' answers were refused while it did."""
        if wanted_bytes <= 0:
            return 0
        judged: set[_Connection] = set()  # connections whose bytes acknowledged were read again in this call
        while True:
            now = self._clock.now()
            with self._condition:
                stale, unjudged, reading = self._stale(now, wanted_bytes, judged)
                if not unjudged:  # each of them judged not reading (or its reading failed): cancelled now
                    taken = [(watched, watched.context) for watched in stale]
                    for watched in stale:
                        watched.context = None  # its end, which this cancel brings, is not one of its connection's sends
                    self.cancelled += len(stale)
                    break
            judged.update(unjudged)  # their peers' acknowledgements first (queries of the kernel: outside the lock)
            for connection in unjudged:
                self._acked_of(connection)
        for connection, oldest in reading.items():  # (what a slow reader's answers are spared for)
            log_event(_log, "answer_kept_reading", level=logging.DEBUG, peer=connection.peer[:200],
                      unread_seconds=round(now - oldest, 3), room_wanted_bytes=wanted_bytes)  # fmt: skip
        for watched, context in taken:
            self._cancel(watched, context, unread_seconds=round(now - watched.made, 3), room_wanted_bytes=wanted_bytes)
        return sum(watched.held_bytes for watched in stale)

    def _stale(
        self, now: float, wanted_bytes: int, judged: set[_Connection],
    ) -> tuple[list[_Watched], list[_Connection], dict[_Connection, float]]:  # fmt: skip
        """(under the lock) The oldest calls to cancel for ``wanted_bytes``: unread ``UNREAD_ROOM_SECONDS``, on
        connections that have shown no reading for as long; the connections whose bytes acknowledged should be read
        again before that, oldest first (empty: none; past ``_MAX_READINGS_FOR_ROOM`` such readings their calls are
        kept): those whose latest reading showed no reading, else, while what is found is less than
        ``wanted_bytes``, those whose did (a scan or two, then the last: not one a reading); and the connections whose
        calls as old were kept for their reading -> when the oldest was made."""
        stale: list[_Watched] = []
        reading: dict[_Connection, float] = {}
        held = 0
        left = _MAX_READINGS_FOR_ROOM - len(judged)
        not_shown: dict[_Connection, None] = {}  # to read again, their latest reading showing no reading (or none)
        shown: dict[_Connection, None] = {}  # to read again, their latest reading showing reading
        for watched in self._unended:  # oldest first
            if now - watched.made < UNREAD_ROOM_SECONDS:
                break  # the rest are younger
            connection = watched.connection
            if watched.context is None or watched.held_bytes <= 0:
                continue
            if now - connection.read_at < UNREAD_ROOM_SECONDS:
                reading.setdefault(connection, watched.made)
                continue
            if (connection not in judged and self._acked_bytes is not None
                    and (connection.acked is None or now - connection.acked[0] >= _ACKED_FRESH_SECONDS)):  # fmt: skip
                if connection.acked is not None and connection.read_at >= connection.acked[0]:
                    if len(shown) < left:
                        shown[connection] = None  # kept unless the others leave room wanted
                elif len(not_shown) < left:
                    not_shown[connection] = None
                continue  # kept unless read again (past ``left`` readings not in this call: a later call may)
            stale.append(watched)
            held += watched.held_bytes
            if held >= wanted_bytes:
                break
        if not_shown:
            return [], list(not_shown), reading
        if held < wanted_bytes and shown:
            return [], list(shown), reading
        return stale, [], reading

    def _cancel(self, watched: _Watched, context: Any, **fields: Any) -> None:
        """Cancel the call of ``watched`` (``context``, taken from it under the lock: counted already), its
        ``answer_not_read`` line carrying ``fields`` (why: its deadline, or room wanted)."""
        try:
            log_event(_log, "answer_not_read", level=logging.WARNING, peer=watched.connection.peer[:200], **fields)
            if self._on_cancel is not None:
                self._on_cancel()
            context.cancel()  # the call ends: ended() runs its actions (grpcio's callbacks), which give the room back
        except Exception as exc:  # a bug: the deadline thread must go on watching; the gate's caller gets its answer
            log_event(_log, "answer_cancel_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")


def _rate(before: tuple[float, int] | None, after: tuple[float, int] | None) -> float | None:
    """Bytes a second acknowledged between two readings (time, bytes), None if either is missing or they are
    too close together to judge."""
    if before is None or after is None or after[0] - before[0] < _MIN_RATE_SECONDS:
        return None
    return (after[1] - before[1]) / (after[0] - before[0])


class _Connection:
    __slots__ = (
        "peer", "watched", "sending_seconds", "made_seconds", "made_count", "deadline", "ended", "acked", "acked_before",
        "read_at",
    )  # fmt: skip

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.watched = 0  # its calls watched now
        self.sending_seconds = 0.0  # what their answers take at the least read rate
        self.made_seconds = 0.0  # what the answers of every call watched since it was first seen take (only grows)
        self.made_count = 0  # those calls (only grows)
        self.deadline = 0.0  # (the clock's) while it is sending, its calls not ended by then are cancelled
        self.ended = 0  # its watched calls sent so far (not those cancelled here or by their client)
        self.acked: tuple[float, int] | None = None  # its latest reading: (the clock's now, bytes acknowledged)
        self.acked_before: tuple[float, int] | None = None  # the latest one _MIN_RATE_SECONDS or more before it
        # (the clock's) when it last showed it reads: an answer sent, or its peer acknowledging bytes at
        # READING_BYTES_PER_SECOND or more between two readings (0.0: never)
        self.read_at = 0.0


class _Watched:
    __slots__ = (
        "context", "connection", "ended_seen", "outcome", "seconds", "own_seconds", "held_seconds",
        "made_seconds_seen", "made_count_seen", "limit", "acked", "held_bytes", "made", "own_deadline",
    )  # fmt: skip

    def __init__(
        self, context: Any, connection: _Connection, outcome: CallOutcome | None, seconds: float, own_seconds: float,
        held_bytes: int = 0,
    ) -> None:  # fmt: skip
        self.context: Any = context  # None once the call has ended (or is being cancelled here)
        self.connection = connection
        self.ended_seen = connection.ended  # its connection's when the call was made or last looked at
        self.outcome = outcome
        self.seconds = seconds
        self.own_seconds = own_seconds  # what its answer takes at the least read rate
        self.held_seconds = connection.sending_seconds  # what its connection's unsent answers took, its own included
        # Its connection's made_seconds and made_count (its own included) when it was made or its limit last set.
        self.made_seconds_seen, self.made_count_seen = connection.made_seconds, connection.made_count
        # (the clock's) set once its own deadline has passed, grown by the answers made since: never kept after
        self.limit: float | None = None
        # Its connection's reading (the clock's now, bytes acknowledged) when it was last looked at: the rate since.
        self.acked: tuple[float, int] | None = None
        self.held_bytes = held_bytes  # of the work gate, until it ends
        self.made = self.own_deadline = 0.0  # (the clock's) set once it is watched


class UnheldAnswers:
    """How many answers gRPC has not finished sending, of those that hold no room: ``take`` counts one (True)
    while fewer than ``limit`` are, else answers False. No lock (itertools.count is atomic under the GIL): the
    count may lag by the calls ending at that moment, which only errs towards holding room.

        unheld = UnheldAnswers(limit=1024)
        if not unheld.take(context): ...  # hold room instead
    """

    def __init__(self, limit: int = MAX_UNHELD_ANSWERS) -> None:
        self.limit = limit
        self._made = itertools.count(1)
        self._ended = itertools.count(1)
        self._ended_so_far = 0

    def take(self, context: Any) -> bool:
        if next(self._made) - self._ended_so_far > self.limit:
            self._end()
            return False
        if not context.add_callback(self._end):  # the call is over already: nothing of it waits
            self._end()
        return True

    def _end(self) -> None:
        self._ended_so_far = next(self._ended)


class UnsentAnswers(grpc.ServerInterceptor):
    """Serializes the answers of unary Tokenizer calls on their handler thread; an answer of ``floor_bytes`` or
    more whose call reserved nothing holds its size in ``admission`` until the call ends, and so does a smaller
    one past ``unheld``'s limit; a call that holds memory is cancelled when its answer is not sent in time, and its
    records (the request log, the handled count: the interceptors further out) wait for its end
    (``CallRecord.outcome_later``). Must run inside the error interceptor (its UNAVAILABLE is translated there,
    and the call record is open) and the interceptors that write those records."""

    def __init__(
        self, admission: WorkAdmission, *, send_seconds: float, floor_bytes: int = FLOOR_BYTES,
        deadlines: SendDeadlines | None = None, unheld: UnheldAnswers | None = None,
    ) -> None:  # fmt: skip
        self.admission = admission
        self.send_seconds = send_seconds
        self.floor_bytes = floor_bytes
        self.deadlines = deadlines if deadlines is not None else SendDeadlines()
        self.unheld = unheld if unheld is not None else UnheldAnswers()

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or not handler_call_details.method.startswith(_TOKENIZER_METHODS):
            return handler
        inner, serialize = handler.unary_unary, handler.response_serializer or _as_is

        def unary_unary(request: Any, context: Any) -> bytes:
            data = serialize(inner(request, context))
            size = len(data)
            record = current_record()
            if record is None:
                return data
            if not record.holds_memory:
                if size < self.floor_bytes:
                    if self.unheld.take(context):
                        return data
                    size_held = STREAM_BYTES + HELD_BYTES_PER_ANSWER_BYTE * size  # many unsent: this one too
                else:
                    size_held = HELD_BYTES_PER_ANSWER_BYTE * size
                record.at_end(self.admission.hold(size_held, call=context))
                record.held_bytes += min(size_held, self.admission.budget_bytes)  # (what ``hold`` took)
            sending_seconds = size / MIN_READ_BYTES_PER_SECOND
            # Its log line and handled count wait for its end (the status its client gets); unwatched: if the record
            # ends by an error, its end actions run at once and they are written then.
            outcome = record.outcome_later = CallOutcome()
            record.at_end(outcome.unwatched)
            record.end_after = self.deadlines.end_after(context, self.send_seconds, sending_seconds=sending_seconds,
                                                        outcome=outcome, held_bytes=record.held_bytes)  # fmt: skip
            return data

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=handler.request_deserializer, response_serializer=_as_is
        )


_TOKENIZER_METHODS = f"/{SERVICE_NAME}/"  # the prefix of the Tokenizer's method names


def _as_is(data: bytes) -> bytes:
    return data
