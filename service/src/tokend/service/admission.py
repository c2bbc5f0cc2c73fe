"""How much working memory the requests of one worker hold at once: a byte-weighted admission gate.

Why: one valid 8 MiB request of a single piece (no whitespace) peaks at ~164 MiB in a worker (the merge
needs ~20 bytes per byte of its piece), and ten at once passed a 1536 MiB pod limit. Each request now
*reserves* its estimated working memory (:func:`working_bytes`) before any work and holds it until the call
ends (``call_record``: the front-end's answer is built inside it):

- a **small** request (estimate ≤ ``small_bytes``, e.g. 1 KB of text or a 64-document batch) never waits:
  its lane is always open, so big requests cannot starve it. Small requests together hold at most the
  handler threads × ``small_bytes``.
- a **large** one waits, in arrival order, until its reservation fits in ``budget_bytes`` less the
  ``answer_room_bytes`` kept for answers (below); one whose estimate alone passes that waits until nothing large
  runs and then runs alone. One worker is one core's worth of work, so running two large requests at once in one
  worker would only interleave them.
- at most ``max_waiting`` large requests wait at once (each holds a handler thread), and none longer than its
  deadline or ``max_wait_seconds``: beyond that ServiceUnavailable (UNAVAILABLE: clients retry, another
  worker may have room), DeadlineExpired or CallCancelled.

A front-end that sends the answer after the call's block (gRPC) gives the reservation back once the answer has
been sent (``CallRecord.end_after``), so answers a client does not read hold the budget, not more. A small
request's answer of many bytes (a decode of long tokens: ~1.3 MB for an estimate within ``small_bytes``) takes
room in the same budget once it is built (``hold``: when it fits, else ServiceUnavailable at once), so unsent
answers of small requests are bounded too (server/unsent_answers.py). Large requests together hold at most the
budget less ``answer_room_bytes`` (an eighth of it by default), so answers always find that room while a large
request runs: else one reserving the whole budget (a 4.4 MB document's ChunkStream) has every answer of 16 KiB or
more of the worker refused while it runs, whoever holds it and however fast its client reads. Answers and large
requests together still hold at most ``budget_bytes``. An answer that finds no room, or the first large request
kept out by answers, has the front-end cancel answers left unread (``unread_room_maker``: the oldest of clients
not reading, server/unsent_answers.py), so that a client that does not read cannot keep the room from those that do.
Not handled: memory that gRPC holds before a handler runs (a request message being received, at most
``max_message_bytes`` each), and answers below the front-end's floor (server/unsent_answers.py: 16 KiB).

    admission = WorkAdmission(budget_bytes=256 << 20, answer_room_bytes=None)  # None: an eighth kept for answers
    release = admission.reserve(working_bytes("encode", sizes=[8 << 20]), call=None)  # waits for room
    ...; release()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from tokend.service.batch import CallState
from tokend.service.errors import CallCancelled, DeadlineExpired, ServiceUnavailable

__all__ = [
    "WorkAdmission",
    "working_bytes",
    "MERGE_BYTES_PER_BYTE",
    "IDS_BYTES_PER_BYTE",
    "DECODE_BYTES_PER_ID",
    "SMALL_REQUEST_BYTES",
    "ANSWER_WAIT_SECONDS",
    "ANSWER_ROOM_SHARE",
    "NOTHING_RESERVED",
]

# Measured with VmHWM of a worker (one request at a time, cl100k_base): one 8 MiB piece of random letters
# peaked at +140..177 MiB for encode and count alike, 8 MiB of short words at +22..38 MiB. The merge of one
# piece needs ~20 bytes per byte of it; a batch merges one piece at a time, so its longest item bounds it.
MERGE_BYTES_PER_BYTE = 20
# An encode holds its ids: a Python list (8 bytes per id, small ints shared; batches of small texts) or,
# for a text encoded alone, the core's uint32 buffer and its copy (4 + 4), then the answer's bytes (up to
# 5 per id, 3 for ids below 2**21); at most one id per input byte.
IDS_BYTES_PER_BYTE = 12
# A decode holds its ids as a list (8 bytes each, plus the message's 4) and builds the text: 3 bytes per
# byte of answer (the str, its UTF-8 in the message, slack).
DECODE_BYTES_PER_ID = 12
DECODE_BYTES_PER_ANSWER_BYTE = 3
# Requests estimated at or below this never wait (4 MiB: a 64 × 4 KB batch, or a 200 KB piece).
SMALL_REQUEST_BYTES = 4 << 20
MAX_WAITING = 4
MAX_WAIT_SECONDS = 60.0
# How long a built answer waits for room (``hold``) before its call is refused: none. Room comes back when an
# unread answer is cancelled (server/unsent_answers.py: seconds), and a waiting answer holds a handler thread:
# with 1 s, a client's 1,000 unread decodes (1.28 MB answers) kept a worker's 32 threads waiting for ~18 s,
# and a CountTokens on a new connection queued behind them up to 7.1 s.
ANSWER_WAIT_SECONDS = 0.0
# The share of the budget large requests leave to answers (``answer_room_bytes=None``): an eighth, 32 MiB of the
# default 256. A small request's answer holds at most ~4 MiB (a decode estimated within SMALL_REQUEST_BYTES answers
# ~1.3 MB, held 3 times over): the room takes eight of those at once, or ~350 answers of 30 KB, while a reading
# client's answer holds it for milliseconds. The largest reservation is 224 MiB of the 256 (an 8 MiB Encode,
# estimated at 256 MiB, runs alone either way).
ANSWER_ROOM_SHARE = 8
# How long the first large request waiting may be passed by answers taking room (``hold``): after it, an answer
# that would stand in its way is refused. Reading clients' answers each hold room for milliseconds, but one after
# another they may always hold some: a request the size of the budget (which runs alone) waited behind answers
# overlapping by a few ms until its 60 s were over (UNAVAILABLE), while the gate's own order kept every other
# large request behind it.
HOLD_YIELDS_AFTER_SECONDS = 1.0
_POLL_SECONDS = 0.1  # how often a waiting request checks that its caller is still there
# How often the first large request waiting for room asks ``room_maker`` for it (after it has waited this long).
ROOM_ASK_SECONDS = 1.0
# How long an answer that did not fit waits for the room of the call ``room_maker`` ended (its end gives it back as
# gRPC reports it: milliseconds).
ROOM_WAIT_SECONDS = 1.0
# How long room counts as wanted (``room_wanted_seconds``) after an answer found none: a worker's answers come again
# within it while its clients are busy (a large request waiting marks it every ``_POLL_SECONDS`` instead).
ROOM_WANTED_AFTER_REFUSAL_SECONDS = 1.0
# Answers (``hold``) held at least this much at once since the last ``on_idle``: the release that leaves nothing held
# (no large request running, no answer) calls ``on_idle`` too. Room taken by holds alone (a burst of overlapping Chunk
# calls, each a small request holding its ids 16 MiB at a time: chunk_ids_room.py) grew a worker 312 -> 2,234 MB and
# kept it, since only a large request's end trimmed. Answers of small requests (up to ~4 MiB each, held for
# milliseconds) reach it together only in a burst, so the trim (1-5 ms) comes at most once a burst.
TRIM_AFTER_ANSWER_BYTES = 16 << 20


def working_bytes(operation: str, *, sizes: Sequence[int] = (), ids: int = 0, answer_bytes: int = 0) -> int:
    """The working memory a request is estimated to need: ``sizes`` are the input bytes of each item
    (encode, count), ``ids`` and ``answer_bytes`` the token ids and answer size of a decode.

    >>> working_bytes("count", sizes=[1 << 20, 100])       # the longest item's merge
    20971520
    >>> working_bytes("encode", sizes=[1 << 20, 1 << 20])  # + the ids of both
    46137344
    """
    if operation == "decode":
        return DECODE_BYTES_PER_ID * ids + DECODE_BYTES_PER_ANSWER_BYTE * answer_bytes
    merge = MERGE_BYTES_PER_BYTE * max(sizes, default=0)
    if operation == "encode":
        return merge + IDS_BYTES_PER_BYTE * sum(sizes)
    return merge


def NOTHING_RESERVED() -> None:  # noqa: N802 - a constant: the release of a small request, which reserved nothing
    pass


class _Ticket:
    __slots__ = ("size", "started")

    def __init__(self, size: int, started: float) -> None:
        self.size = size  # what it waits to hold (at most the budget)
        self.started = started  # time.monotonic() when it began to wait


class WorkAdmission:
    """The gate of one worker (thread-safe); ``on_idle`` is called when the last large request ends (the
    gRPC worker returns freed memory to the system then)."""

    def __init__(
        self,
        budget_bytes: int,
        *,
        small_bytes: int = SMALL_REQUEST_BYTES,
        max_waiting: int = MAX_WAITING,
        max_wait_seconds: float = MAX_WAIT_SECONDS,
        answer_room_bytes: int | None = 0,
        on_idle: Callable[[], None] | None = None,
        waiting_for: str = "for memory held by larger requests",
    ) -> None:
        """``answer_room_bytes``: what large requests leave to answers (``hold``); None: ``budget_bytes //
        ANSWER_ROOM_SHARE``; 0: nothing (a budget of places, not bytes: server/deferred_parse.py).
        ``waiting_for``: what a caller that stopped waiting is told it waited for."""
        if answer_room_bytes is None:
            answer_room_bytes = budget_bytes // ANSWER_ROOM_SHARE
        if budget_bytes > 0 and not 0 <= answer_room_bytes < budget_bytes:
            raise ValueError(
                f"answer_room_bytes ({answer_room_bytes}) must be at least 0 and less than the budget ({budget_bytes})"
            )
        self.budget_bytes = budget_bytes
        self.answer_room_bytes = answer_room_bytes
        self.large_budget_bytes = budget_bytes - answer_room_bytes  # what the large requests running may hold
        self.waiting_for = waiting_for
        self.small_bytes = small_bytes
        self.max_waiting = max_waiting
        self.max_wait_seconds = max_wait_seconds
        self._on_idle = on_idle
        self._condition = threading.Condition()
        self._queue: deque[_Ticket] = deque()  # the large requests waiting, in arrival order
        # Set by the front-end: ends a call that holds room without using it (a stream whose client has left its
        # answer unread: server/idle_streams.py), so that its room comes back; True when it ended one. Such a
        # call held its reservation until its deadline or its connection's age (320 s): every large request of
        # the worker waited behind it until its own deadline or 60 s, every answer of 16 KiB or more was refused.
        # Asked by the first large request waiting (once a second) and by an answer that does not fit (``hold``);
        # which call to end it decides by ``room_wanted_seconds`` (how long others have wanted room).
        self.room_maker: Callable[[], bool] | None = None
        # Set by the front-end: cancels calls whose answers sit unread (not sent for a second, their client showing
        # no reading), oldest first, until they held the bytes asked for; answers what they held (server/
        # unsent_answers.py, ``SendDeadlines.make_room``). Asked by an answer that finds no room (after
        # ``room_maker``), and by the first large request waiting (once a second) when answers keep it out: the room
        # went first come, first served, and a client leaving a 1.28 MB Decode a second unread kept ~8 of them held
        # (3.84 MiB each, ~11 s until cancelled): beside a large stream, the 32 MiB kept for answers.
        self.unread_room_maker: Callable[[int], int] | None = None
        self.held_bytes = 0  # reserved by the large requests running now and held by answers (``hold``)
        self.answer_bytes = 0  # of which held by answers
        self.running = 0
        self._answer_peak = 0  # the most answer bytes held at once since ``on_idle`` was last called
        # The clock of ``room_wanted_seconds``: its seconds before the current window, and that window (monotonic).
        self._wanted_lock = threading.Lock()
        self._wanted_before = 0.0
        self._wanted_start = self._wanted_end = 0.0

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def room_wanted_seconds(self) -> float:
        """A clock that runs only while room is wanted: a large request waits for room (or for its turn), or an
        answer found none in the last ``ROOM_WANTED_AFTER_REFUSAL_SECONDS``. What it advanced by between two readings
        is how long others wanted room between them: a stream whose client leaves its answer unread is charged that
        much (server/idle_streams.py), and nothing while nobody waits."""
        now = time.monotonic()
        with self._wanted_lock:
            return self._wanted_before + max(0.0, min(now, self._wanted_end) - self._wanted_start)

    def _want_room(self, seconds: float) -> None:
        """Room is wanted from now for ``seconds`` (a window already open is extended)."""
        now = time.monotonic()
        with self._wanted_lock:
            if now > self._wanted_end:  # the last window is over: its seconds are counted, a new one opens
                self._wanted_before += self._wanted_end - self._wanted_start
                self._wanted_start = now
            self._wanted_end = max(self._wanted_end, now + seconds)

    def reserve(self, size: int, *, call: CallState | None) -> Callable[[], None]:
        """Wait until ``size`` bytes fit (at once for a small request); returns the function that gives them
        back (idempotent)."""
        if size <= self.small_bytes or self.budget_bytes <= 0:
            return NOTHING_RESERVED
        size = min(size, self.large_budget_bytes)
        started = time.monotonic()
        ticket = _Ticket(size, started)
        with self._condition:
            if len(self._queue) >= self.max_waiting:
                raise ServiceUnavailable(
                    f"this worker is busy with large requests ({len(self._queue)} waiting, {self.running} running); "
                    "retry shortly, or send smaller requests"
                )
            self._queue.append(ticket)
            try:
                asked = started
                while not (self._queue[0] is ticket and self._large_fits(size)):
                    self._want_room(2 * _POLL_SECONDS)  # until its next look, and the one after
                    self._condition.wait(self._wait_slice(call, started))
                    now = time.monotonic()
                    if self._queue[0] is ticket and now - asked >= ROOM_ASK_SECONDS:
                        asked = now
                        if self.room_maker is not None:
                            self._ask_for_room()
                        if self.unread_room_maker is not None and not self._large_fits(size):
                            self._ask_unread_for_room(self._kept_out_by_answers(size))
                self._queue.popleft()
                self.held_bytes += size
                self.running += 1
            except BaseException:
                self._queue.remove(ticket)
                raise
            finally:
                self._condition.notify_all()
        return self._release_once(size, running=True)

    def _large_fits(self, size: int) -> bool:
        """Whether a large request of ``size`` fits now: beside the large requests running, within what they may
        hold, and beside the answers held too, within the budget (under the condition's lock)."""
        return (
            self.held_bytes - self.answer_bytes + size <= self.large_budget_bytes
            and self.held_bytes + size <= self.budget_bytes
        )

    def _kept_out_by_answers(self, size: int) -> int:
        """The bytes of answers that keep a large request of ``size`` out (0 if the large requests running do):
        what must leave for it to fit in the budget beside them (under the condition's lock)."""
        if self.held_bytes - self.answer_bytes + size > self.large_budget_bytes:
            return 0
        return max(0, self.held_bytes + size - self.budget_bytes)

    def _answer_room_wanted(self, size: int) -> int:
        """The bytes that must leave for an answer of ``size`` to be held now: beyond the budget, or what keeps the
        first large request waiting out (``_in_the_way_of_the_first``), the fewer that makes it fit (under the
        condition's lock)."""
        wanted = max(0, self.held_bytes + size - self.budget_bytes)
        if self._in_the_way_of_the_first(size):
            beyond_room = self.answer_bytes + size - self.answer_room_bytes
            in_the_way = self.held_bytes + size + self._queue[0].size - self.budget_bytes
            wanted = max(wanted, min(beyond_room, in_the_way))
        return wanted

    def _ask_unread_for_room(self, wanted: int) -> int:
        """``unread_room_maker(wanted)`` outside the lock (as ``_ask_for_room``); 0 when nothing is wanted."""
        if wanted <= 0:
            return 0
        self._condition.release()
        try:
            return self.unread_room_maker(wanted)  # type: ignore[misc]
        finally:
            self._condition.acquire()

    def _ask_for_room(self) -> bool:
        """``room_maker``, outside the lock (under the condition's lock when called): the call it ends gives its
        room back through ``release``, which takes the lock, maybe on this thread."""
        self._condition.release()
        try:
            return bool(self.room_maker())  # type: ignore[misc]
        finally:
            self._condition.acquire()

    def hold(self, size: int, *, call: CallState | None, max_wait_seconds: float = ANSWER_WAIT_SECONDS) -> Callable[[], None]:
        """Room for ``size`` bytes a call holds already (an answer built and not yet sent): taken at once when it
        fits, ahead of the large requests waiting (it is memory in use already, and a reading client takes it in
        milliseconds) unless it would keep out the first of them once that one has waited
        ``HOLD_YIELDS_AFTER_SECONDS`` (answers within ``answer_room_bytes`` never do: large requests leave it), else
        after a wait of ``max_wait_seconds`` at most (none by default), then ServiceUnavailable; when the budget is
        full, ``room_maker`` is asked first, and if it ended a call, the answer waits up to ``ROOM_WAIT_SECONDS`` for
        that room. Counts neither among the large requests running nor waiting; its end calls ``on_idle`` when it
        leaves nothing held and answers held ``TRIM_AFTER_ANSWER_BYTES`` at once since the last call. Returns the
        function that gives it back (idempotent)."""
        if self.budget_bytes <= 0:
            return NOTHING_RESERVED
        size = min(size, self.budget_bytes)
        started = time.monotonic()
        with self._condition:
            asked = asked_unread = False
            while self.held_bytes + size > self.budget_bytes or self._in_the_way_of_the_first(size):
                waited = time.monotonic() - started
                if not asked and self.held_bytes + size > self.budget_bytes:
                    self._want_room(ROOM_WANTED_AFTER_REFUSAL_SECONDS)  # before the ask: a stream unread now is charged
                if waited >= max_wait_seconds:
                    if (not asked and self.room_maker is not None and self.held_bytes + size > self.budget_bytes
                            and self._ask_for_room()):  # a call holding room unused was ended: its room comes back
                        asked = True
                        max_wait_seconds = time.monotonic() - started + ROOM_WAIT_SECONDS
                        continue
                    if (not asked_unread and self.unread_room_maker is not None
                            and self._ask_unread_for_room(self._answer_room_wanted(size))):  # fmt: skip
                        # unread answers were cancelled: their room comes back as gRPC ends them
                        asked = asked_unread = True
                        max_wait_seconds = time.monotonic() - started + ROOM_WAIT_SECONDS
                        continue
                    if self.held_bytes + size <= self.budget_bytes:  # it fits, but a large request waits for the room
                        raise ServiceUnavailable(
                            f"this worker's answer room (max_work_bytes: {self.budget_bytes >> 20} MiB) goes to a large "
                            "request that has waited for it; retry shortly"
                        )
                    raise ServiceUnavailable(
                        f"this worker holds {self.held_bytes >> 20} MiB of answers not yet sent and of large requests' "
                        f"memory (its limit, max_work_bytes: {self.budget_bytes >> 20} MiB); retry shortly"
                    )
                self._condition.wait(min(self._wait_slice(call, started), max_wait_seconds - waited))
            self.held_bytes += size
            self.answer_bytes += size
            self._answer_peak = max(self._answer_peak, self.answer_bytes)
        return self._release_once(size, running=False)

    def _in_the_way_of_the_first(self, size: int) -> bool:
        """Whether holding ``size`` more bytes of answers would keep out the first large request waiting, which has
        waited ``HOLD_YIELDS_AFTER_SECONDS`` already (under the condition's lock). Answers within the answer room do
        not: the large requests running leave it whatever they hold."""
        if not self._queue:
            return False
        first = self._queue[0]
        return (
            self.answer_bytes + size > self.answer_room_bytes
            and self.held_bytes + size + first.size > self.budget_bytes
            and time.monotonic() - first.started >= HOLD_YIELDS_AFTER_SECONDS
        )

    def _release_once(self, size: int, *, running: bool) -> Callable[[], None]:
        """The function that gives ``size`` bytes back (idempotent); ``running``: a large request's, which also
        leaves the running count (the last one out calls ``on_idle``); else an answer's, whose end calls it when it
        leaves nothing held after answers held ``TRIM_AFTER_ANSWER_BYTES`` at once."""
        released = False

        def release() -> None:
            nonlocal released
            idle = False
            with self._condition:
                if released:
                    return
                released = True
                self.held_bytes -= size
                if running:
                    self.running -= 1
                    idle = self.running == 0
                else:
                    self.answer_bytes -= size
                    idle = self.held_bytes == 0 and self._answer_peak >= TRIM_AFTER_ANSWER_BYTES
                if idle:
                    self._answer_peak = self.answer_bytes
                self._condition.notify_all()
            if idle and self._on_idle is not None:
                self._on_idle()

        return release

    def _wait_slice(self, call: CallState | None, started: float) -> float:
        """Seconds to wait before looking again; raises once the request must stop waiting."""
        waited = time.monotonic() - started
        if call is not None:
            remaining = call.time_remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExpired(0, 0, waiting=self.waiting_for)
            if not call.is_active():
                raise CallCancelled(f"the client cancelled the call while it waited {self.waiting_for}")
        if waited >= self.max_wait_seconds:
            raise ServiceUnavailable(
                f"this worker has been busy with large requests for {waited:.0f} s; retry, or send smaller requests"
            )
        return _POLL_SECONDS
