"""Stopping a long engine call midway: at a deadline, or when the caller went away.

The caller opens ``stop_at(stop)`` around its engine calls; native cores that honour it check it between
bounded steps without the GIL (a clock read and a byte) and raise :class:`CallStopped`: the SentencePiece core
(its normalizer, Unigram Viterbi and BPE scan, every 4 KB) and the byte-level core on a text of 64 KiB or more
(between batches of pieces, every 64 KiB). Other engine calls ignore it: their work is bounded by the request
size alone. The stop travels in a context variable, so it reaches a bulk lane's
thread (which runs the caller's context) without a parameter on every method.

    >>> import time
    >>> stop = CallStop(deadline=time.monotonic() + 5.0)
    >>> with stop_at(stop):
    ...     stop.cancel()          # e.g. from grpc's call-termination callback, any thread
    >>> stop.cancelled
    True

Engine loops in Python look at it with :func:`stop_if_due` between bounded steps: NFC's runs (nfc.py) and the pieces
of raw bytes that are not UTF-8 (``Encoding.encode_bytes``).

Not handled: the byte-level core on smaller texts (~10 ms at most), within one piece's merge (a long piece takes
the run or bucket merge, ~0.02-0.03 s a MB), in ``encode_batch`` (the service checks the call
between its chunks of texts); the regex fallback (it has its own time bound, ``regex_splitter.RegexTime``).
"""

from __future__ import annotations

import contextvars
import time

__all__ = ["CURRENT_STOP", "CallStop", "CallStopped", "stop_at", "stop_if_due"]

# (deadline, flag): the form the native cores read. deadline: time.monotonic() seconds, 0.0 for none; flag: a
# bytearray of one byte, non-zero once the caller went away.
CURRENT_STOP: contextvars.ContextVar[tuple[float, bytearray] | None] = contextvars.ContextVar(
    "tokend_call_stop", default=None
)


class CallStopped(Exception):
    """An engine call gave up midway because its caller's deadline passed or the caller went away.

    Not a ``TokendError``: nothing is wrong with the input, and the service turns it into its own
    DeadlineExpired / CallCancelled (it knows which from the call's state)."""


class CallStop:
    """When the engine calls opened under :func:`stop_at` should give up."""

    __slots__ = ("deadline", "_flag")

    def __init__(self, *, deadline: float | None = None) -> None:
        """``deadline``: in ``time.monotonic()`` seconds, None for none."""
        self.deadline = deadline
        self._flag = bytearray(1)

    def cancel(self, *_: object) -> None:
        """The caller went away: calls under this stop give up at their next check (any thread may call it)."""
        self._flag[0] = 1

    @property
    def cancelled(self) -> bool:
        return bool(self._flag[0])


class stop_at:  # noqa: N801 - used as a function: ``with stop_at(stop):``
    """Within it (this context and what runs in a copy of it), native engine calls honour ``stop``.

    A class, not a ``@contextmanager`` generator: every served text call enters one, and a generator-based
    context manager costs several Python calls more per entry."""

    __slots__ = ("_stop", "_token")

    def __init__(self, stop: CallStop | None) -> None:
        self._stop = stop
        self._token: contextvars.Token[tuple[float, bytearray] | None] | None = None

    def __enter__(self) -> None:
        stop = self._stop
        if stop is not None:
            self._token = CURRENT_STOP.set((stop.deadline or 0.0, stop._flag))

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            CURRENT_STOP.reset(self._token)


def stop_if_due() -> None:
    """Raise :class:`CallStopped` when the stop in force (``stop_at``) is due: for engine loops in Python, between
    bounded steps (a context variable read, and a clock read when there is a stop: ~0.1 us).

    >>> with stop_at(CallStop(deadline=time.monotonic() - 1)):
    ...     stop_if_due()
    Traceback (most recent call last):
    tokend.engine.call_stop.CallStopped
    """
    stop = CURRENT_STOP.get()
    if stop is not None and (stop[1][0] or 0.0 < stop[0] <= time.monotonic()):
        raise CallStopped
