"""A call's stop for the engine, and the scope of measuring a request's texts under it.

``engine_stop(call)`` is the engine's ``CallStop`` for a front-end's call: its deadline, and its cancel when the
front-end tells of it. ``measuring(call)`` is the scope in which a request's texts are normalized to be measured
before it is admitted (``work_sizes``): normalizing a big text takes seconds (8 MB of NFC's shortest runs: ~2 s),
so engine calls in it honour the call's stop, and one that gives up is answered as the operation's own engine calls
are (DeadlineExpired / CallCancelled, ``batch.stopped_midway``).

    >>> with measuring(None):   # no call: nothing to stop at
    ...     pass
"""

from __future__ import annotations

import time
from typing import Any

from tokend.engine.call_stop import CallStop, CallStopped, stop_at
from tokend.service.batch import CallState, stopped_midway

__all__ = ["engine_stop", "measuring"]


def engine_stop(call: CallState | None) -> CallStop | None:
    """The engine's stop for ``call``: its deadline, and its cancellation when the front-end tells of it
    (grpc's ``add_callback`` runs when the call ends, the client's cancel included)."""
    if call is None:
        return None
    remaining = call.time_remaining()
    stop = CallStop(deadline=None if remaining is None else time.monotonic() + remaining)
    add_callback = getattr(call, "add_callback", None)
    if add_callback is not None:
        add_callback(stop.cancel)
    return stop


class measuring:  # noqa: N801 - used as a function: ``with measuring(call):``
    """Engine calls inside honour ``call``'s stop; one that gives up raises DeadlineExpired / CallCancelled."""

    __slots__ = ("_call", "_stop")

    def __init__(self, call: CallState | None) -> None:
        self._call = call
        self._stop = stop_at(engine_stop(call))

    def __enter__(self) -> None:
        self._stop.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self._stop.__exit__(exc_type, exc, traceback)
        if exc_type is not None and issubclass(exc_type, CallStopped):
            raise stopped_midway(self._call, completed=0, total=0, during="its inputs (measuring them)") from None
