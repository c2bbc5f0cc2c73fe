"""At most ``STREAM_SLOTS`` Tokenizer streams (ChunkStream, DecodeStream) run in one worker at a time.

Why: grpcio's synchronous server runs each call on one of the worker's ``THREADS_PER_WORKER`` threads for
the call's whole life, and a stream lives as long as its client keeps it open (a DecodeStream for a whole
generation, a ChunkStream as long as its reader is slow). Without a bound, open streams would leave the
worker no thread for a single Encode. With it (``STREAM_THREADS``, 4), the other threads remain for unary calls; a
stream over the bound gets UNAVAILABLE at once ("retry": another worker or replica may have room). A stream
whose client goes quiet gives its slot back after ``--stream-idle-timeout``, or as soon as a new stream needs
it once its client has been silent (sent nothing, or took no answer) for ``--stream-yield-after``
(``make_room``: idle_streams.py).

    idle = IdleStreams(30.0, yield_after=10.0)
    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), StreamSlots(STREAM_SLOTS, idle.make_room), idle])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.grpc_server import STREAM_THREADS, THREADS_PER_WORKER
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.service.errors import ServiceUnavailable

__all__ = ["StreamSlots", "STREAM_SLOTS"]

STREAM_SLOTS = STREAM_THREADS
# How long a new stream waits for the slot of a stream ``make_room`` ended: that stream's handler returns at
# once (it was waiting for its client), so this is only a bound.
_SLOT_HANDOVER_SECONDS = 2.0


class StreamSlots(UnaryInterceptor):
    wrap_streams = True
    wrap_unary = False  # unary calls hold their thread only while they run: nothing to bound

    def __init__(self, slots: int = STREAM_SLOTS, make_room: Callable[[], bool] | None = None) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)
        self._make_room = make_room  # ends a silent stream to free its slot; False if there is none

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._in_a_slot(behaviour, request, context)

    def _in_a_slot(self, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        # Taken when the stream starts running (here, not in handle_stream): a generator that never runs
        # never reaches its `finally`, and would keep the slot.
        if not self._free.acquire(blocking=False) and not self._room_made():
            raise ServiceUnavailable(
                f"this worker already runs {self.slots} streams (each holds one of its {THREADS_PER_WORKER} threads "
                "while open); retry shortly: another worker or replica may have room"
            )
        try:
            yield from behaviour(request, context)
        finally:
            self._free.release()

    def _room_made(self) -> bool:
        """A slot, taken from a stream whose client has been silent (if there is such a stream)."""
        if self._make_room is None or not self._make_room():
            return False
        return self._free.acquire(timeout=_SLOT_HANDOVER_SECONDS)
