"""The answers of unary Tokenizer calls that are built but not yet sent: their memory is bounded, and so is the
time they may hold it.

Why: grpcio queues a unary answer with its status and returns; HTTP/2 flow control keeps it queued while the
client does not read (a window it never opens). Two things held memory there without a bound:

- **a small request's large answer.** The work gate (service/admission) reserves nothing for a request estimated
  at 4 MiB or less, yet such a decode of long tokens answers ~1.3 MB for ~30 KB of request: a client that opened
  a thousand such calls and read nothing left a worker with gigabytes of queued answers. So every answer is
  serialized here, on the handler thread, and one of ``FLOOR_BYTES`` or more whose call reserved nothing takes
  room for what it holds (``HELD_BYTES_PER_ANSWER_BYTE``) in the work gate (``WorkAdmission.hold``: when it
  fits, else UNAVAILABLE at once), given back once gRPC has finished the call (``CallRecord.end_after``).
  Answers below the floor (every CountTokens, a 1 KB Encode) take no lock: one length compared.
- **an answer never read.** A call's reservation (an answer's, or a large request's working memory) was held
  until its connection's end: ``max_connection_age`` + grace, ~320 s, during which every other large call
  waited for room or was refused. Now a call whose answer has not been sent ``send_seconds`` plus one second per
  ``MIN_READ_BYTES_PER_SECOND`` of it after its handler returned is cancelled (``grpc.RpcContext.cancel``: an
  RST_STREAM, the queued answer dropped), which ends the call and gives its memory back. The client sees
  CANCELLED: its answer can no longer be sent with a status (the status waits behind the answer's data).

Only calls that hold memory are watched (their handler thread is free by then): one thread per worker wakes
at the earliest deadline. Streams are not handled here: their handler waits in gRPC's send (idle_streams.py).

    answers = UnsentAnswers(admission, send_seconds=10.0)
    interceptors=[..., ErrorInterceptor(), answers, AvailabilityInterceptor(...), ...]  # inside the call record
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
from tokend_api import SERVICE_NAME

from tokend.logs import log_event
from tokend.service.admission import WorkAdmission
from tokend.service.call_record import current_record

__all__ = ["UnsentAnswers", "SendDeadlines", "FLOOR_BYTES", "HELD_BYTES_PER_ANSWER_BYTE", "MIN_READ_BYTES_PER_SECOND"]

_log = logging.getLogger("tokend.server.unsent_answers")

# Answers of at least this many bytes take room in the work gate: ~5,000 token ids, or 16 KiB of decoded text.
# Below it an unread answer costs about what its call's own state in gRPC does (a stream, its metadata).
FLOOR_BYTES = 16 << 10
# What an unsent answer of n bytes holds: grpcio keeps the serialized bytes until the send completes, gRPC core
# its own copy, and the allocator some slack: 3.3-3.4 MiB of a worker's RSS per unread 1.28 MB answer (100 and
# 200 such decodes with the gate off; the work gate counts a large decode's answer bytes 3 times too).
HELD_BYTES_PER_ANSWER_BYTE = 3
# A client reading slower than this (on average, over its answer) has its call cancelled: 16 s more for a
# 16 MiB answer (the default max_message_bytes), where a client on the same network takes milliseconds.
MIN_READ_BYTES_PER_SECOND = 1 << 20


class SendDeadlines:
    """Cancels calls whose answer has not been sent by their deadline (thread-safe; its thread starts with the
    first call watched)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Watched]] = []  # (deadline, arrival, call) of the calls watched
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self.cancelled = 0  # calls cancelled so far

    def end_after(self, context: Any, seconds: float) -> Callable[[Callable[[], None]], bool]:
        """A ``CallRecord.end_after`` for the call of ``context``: runs the record's end actions once gRPC has
        finished the call (``add_callback``), and cancels the call if that has not happened ``seconds`` after."""

        def register(actions: Callable[[], None]) -> bool:
            watched = _Watched(context)

            def ended() -> None:
                watched.context = None  # sent (or cancelled): nothing to do at its deadline
                actions()

            if not context.add_callback(ended):
                return False
            with self._condition:
                heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._order), watched))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="tokend-unsent-answers", daemon=True)
                    self._thread.start()
                self._condition.notify()
            return True

        return register

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._condition.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                _, _, watched = heapq.heappop(self._heap)
            context = watched.context
            if context is not None:
                self.cancelled += 1
                try:
                    context.cancel()  # the call ends: ended() runs its actions (grpcio's callbacks)
                except Exception as exc:  # a bug: this thread must go on watching the other calls
                    log_event(_log, "answer_cancel_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")


class _Watched:
    __slots__ = ("context",)

    def __init__(self, context: Any) -> None:
        self.context: Any = context  # None once the call has ended


class UnsentAnswers(grpc.ServerInterceptor):
    """Serializes the answers of unary Tokenizer calls on their handler thread; an answer of ``floor_bytes`` or
    more whose call reserved nothing holds its size in ``admission`` until the call ends; a call that holds
    memory is cancelled when its answer is not sent in time. Must run inside the error interceptor (its
    UNAVAILABLE is translated there, and the call record is open)."""

    def __init__(
        self, admission: WorkAdmission, *, send_seconds: float, floor_bytes: int = FLOOR_BYTES,
        deadlines: SendDeadlines | None = None,
    ) -> None:  # fmt: skip
        self.admission = admission
        self.send_seconds = send_seconds
        self.floor_bytes = floor_bytes
        self.deadlines = deadlines if deadlines is not None else SendDeadlines()

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None or not handler_call_details.method.startswith(f"/{SERVICE_NAME}/"):
            return handler
        inner, serialize = handler.unary_unary, handler.response_serializer or _as_is

        def unary_unary(request: Any, context: Any) -> bytes:
            data = serialize(inner(request, context))
            size = len(data)
            record = current_record()
            if record is None or (size < self.floor_bytes and not record.holds_memory):
                return data
            if not record.holds_memory:
                record.at_end(self.admission.hold(HELD_BYTES_PER_ANSWER_BYTE * size, call=context))
            record.end_after = self.deadlines.end_after(context, self.send_seconds + size / MIN_READ_BYTES_PER_SECOND)
            return data

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, request_deserializer=handler.request_deserializer, response_serializer=_as_is
        )


def _as_is(data: bytes) -> bytes:
    return data
