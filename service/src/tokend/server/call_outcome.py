"""What a unary call's client got, known only once gRPC has finished the call, after its handler answered: the call
may still fail then (cancelled here for an unread answer, by its client's reset or deadline, or the worker ending).
``CallOutcome`` holds its writers (the request log line, the handled count) until that end; ``end_status`` and
``ended_by_client`` read grpcio's call state to tell a sent answer from a cancelled call.

    outcome = CallOutcome()
    outcome.then(lambda status, ended: log(status, ended - started))
    outcome.end(end_status(context, cancelled_here=False))  # grpc.StatusCode.OK once the answer was sent
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc

from tokend.logs import log_event
from tokend.service.batch import DEADLINE_SLACK_SECONDS

__all__ = ["CallOutcome", "end_status", "ended_by_client"]

_log = logging.getLogger("tokend.server.unsent_answers")  # the name its events had: operators' filters keep working


def end_status(context: Any, *, cancelled_here: bool) -> grpc.StatusCode:
    """The status the client of the ended call of ``context`` got, its handler having answered: OK when the answer
    and status were sent; CANCELLED when ``cancelled_here`` (``SendDeadlines``) or by its client (RST_STREAM, a
    closed connection), DEADLINE_EXCEEDED when the call's deadline had come (gRPC cancels it then, the same
    slack as ``stream_end_code``). grpcio's call state tells a sent call from a cancelled one (``ended_by_client``:
    "cancelled", else "closed"); a context without it (a test's) ended as ``cancelled_here`` says."""
    client = getattr(getattr(context, "_state", None), "client", None)
    if client == "closed" or (client != "cancelled" and not cancelled_here):
        return grpc.StatusCode.OK  # sent (a cancel here that came after its send changed nothing)
    if cancelled_here:
        return grpc.StatusCode.CANCELLED
    remaining = context.time_remaining() if hasattr(context, "time_remaining") else None
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


class CallOutcome:
    """The status a call ended with, known after its handler returned; ``then(write)`` calls ``write(status,
    ended)`` once it is (at once if it is already; ``ended``: ``time.perf_counter()``), ``end`` tells it, once
    (later ends are ignored). ``end(None)``: the call's end was not watched after all (its record ended by an
    error); each writer keeps the status it saw. Thread-safe: a call may end (gRPC's thread) before its last
    writer is given. A writer that raises is logged (``call_record_failed``) and the others run: ``end`` runs
    before the call's end actions, which give its memory back.

        outcome = CallOutcome()
        outcome.then(lambda status, ended: log(status, ended - started))
        outcome.end(grpc.StatusCode.CANCELLED)  # the write runs here
    """

    __slots__ = ("_lock", "_writers", "_ended")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: list[Callable[[grpc.StatusCode | None, float], None]] = []
        self._ended: tuple[grpc.StatusCode | None, float] | None = None  # (status, perf_counter()) once ended

    def then(self, write: Callable[[grpc.StatusCode | None, float], None]) -> None:
        with self._lock:
            if self._ended is None:
                self._writers.append(write)
                return
        _run_writer(write, self._ended)

    def end(self, status: grpc.StatusCode | None) -> None:
        with self._lock:
            if self._ended is not None:
                return
            self._ended = ended = (status, time.perf_counter())
            writers, self._writers = self._writers, []
        for write in writers:
            _run_writer(write, ended)

    def unwatched(self) -> None:
        """An end action: ends it (``None``) when the call's end was not watched (no ``end`` came before)."""
        if self._ended is None:  # (read without the lock: ``end`` checks again under it)
            self.end(None)


def _run_writer(
    write: Callable[[grpc.StatusCode | None, float], None], ended: tuple[grpc.StatusCode | None, float]
) -> None:
    try:
        write(*ended)
    except Exception as exc:  # a bug: the other records, and the call's end actions, must still happen
        log_event(_log, "call_record_failed", level=logging.ERROR, error=f"{type(exc).__name__}: {exc}")


def ended_by_client(context: Any) -> bool:
    """Whether the ended call of ``context`` was cancelled by its client (an RST_STREAM, its deadline) rather than
    sent. grpcio has no public way to tell, so its call state's ``client`` is read (grpc._server, 1.85: set to
    "cancelled" when the call's close from the client says so); a context without it counts as sent.

    Why: a client cancels its own calls at will. Counted as sends, a client that read nothing kept every unread
    answer on its connection (and the work budget they hold) by making and cancelling a call every few seconds
    (each one pushes the connection's deadline ``seconds`` further)."""
    return getattr(getattr(context, "_state", None), "client", None) == "cancelled"
