"""The calls whose handler runs now, as one records-writing interceptor sees them, so that a worker ending under
them can write their records itself: each call is recorded once, by its handler or by ``cut``, whichever comes
first.

Why: the request log line and ``grpc_server_handled_total`` of a call are written when its handler returns (or,
for a watched answer, when gRPC reports the call's end: unsent_answers.py). A draining worker whose grace period
ends while handlers still run ends its process under them (worker.py, ``_end_process``): such a call was counted
started and never handled (the dead worker's counters stay in the supervisor's sums: started - handled stayed off
for good) and had no log line, while its client saw the connection close (UNAVAILABLE). Now the worker, before it
ends, has each interceptor write its records of the calls still running (``cut``), with the status their
clients see (``cut_status``).

No lock: a call's entry is stored under its context (one per call) when its handler starts and popped when it
ends; ``cut`` pops every entry. ``dict.pop`` is atomic under the GIL (a context hashes and compares by identity),
so whichever pops an entry writes its records and the other writes nothing: a handler that returns after the cut
(the process is ending) records nothing. Cost: a tuple, a store and a pop per call and interceptor, written inline
(a method call each cost as much again): +0.2-0.75 µs best a CountTokens for the two interceptors, of ~10 µs
(`python -m bench chain-percall`, builds alternated).

    running = RunningCalls()             # context -> what the interceptor writes its records from
    running[context] = (started,)
    ...                                  # the handler
    if running.pop(context, None) is not None: write(...)  # else ``cut`` wrote it
    for context, (started,) in running.cut(): write(..., cut_status(context))
"""

from __future__ import annotations

from typing import Any

import grpc

from tokend.service.batch import DEADLINE_SLACK_SECONDS

__all__ = ["RunningCalls", "cut_status"]


class RunningCalls(dict):  # type: ignore[type-arg]
    """context -> the entry an interceptor writes a running call's records from."""

    __slots__ = ()

    def cut(self) -> list[tuple[Any, Any]]:
        """The (context, entry) of the calls still running, each taken once: their handlers will write nothing."""
        taken = []
        for context in list(self):
            entry = self.pop(context, None)
            if entry is not None:
                taken.append((context, entry))
        return taken


def cut_status(context: Any) -> grpc.StatusCode:
    """The status the client of a call whose handler still runs sees when its worker ends: UNAVAILABLE (the
    connection closes: "Socket closed", which clients retry); or, for a call that had ended already without its
    handler knowing (its client's cancel or deadline), CANCELLED or DEADLINE_EXCEEDED, as ``stream_end_code``
    tells them apart. A context without ``is_active`` (a test's) reads UNAVAILABLE."""
    is_active = getattr(context, "is_active", None)
    if is_active is None or is_active():
        return grpc.StatusCode.UNAVAILABLE
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
