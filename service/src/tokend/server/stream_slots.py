"""At most ``STREAM_SLOTS`` Tokenizer streams (ChunkStream, DecodeStream) run in one worker at a time.

Why: grpcio's synchronous server runs each call on one of the worker's ``THREADS_PER_WORKER`` threads for
the call's whole life, and a stream lives as long as its client keeps it open (a DecodeStream for a whole
generation, a ChunkStream as long as its reader is slow). Without a bound, eight open streams would leave
the worker no thread for a single Encode. With it, half the threads always remain for unary calls; a
stream over the bound gets UNAVAILABLE at once ("retry": another worker or replica may have room). A stream
whose client goes quiet gives its slot back after ``--stream-idle-timeout`` (idle_streams.py).

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), StreamSlots(STREAM_SLOTS)])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.grpc_server import THREADS_PER_WORKER
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.service.errors import ServiceUnavailable

__all__ = ["StreamSlots", "STREAM_SLOTS"]

STREAM_SLOTS = THREADS_PER_WORKER // 2


class StreamSlots(UnaryInterceptor):
    wrap_streams = True
    wrap_unary = False  # unary calls hold their thread only while they run: nothing to bound

    def __init__(self, slots: int = STREAM_SLOTS) -> None:
        self.slots = slots
        self._free = threading.BoundedSemaphore(slots)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._in_a_slot(behaviour, request, context)

    def _in_a_slot(self, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        # Taken when the stream starts running (here, not in handle_stream): a generator that never runs
        # never reaches its `finally`, and would keep the slot.
        if not self._free.acquire(blocking=False):
            raise ServiceUnavailable(
                f"this worker already runs {self.slots} streams (each holds one of its {THREADS_PER_WORKER} threads "
                "while open); retry shortly: another worker or replica may have room"
            )
        try:
            yield from behaviour(request, context)
        finally:
            self._free.release()
