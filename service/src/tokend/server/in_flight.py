"""Counts the unary calls a worker is running, so draining can end as soon as they are done.

Why: gRPC's own wait (``server.stop(grace)``) counts *every* RPC, including grpc.health.v1 Watch streams,
which never end by themselves; a single watcher would hold every shutdown for the whole grace period.
Draining waits for this count to reach zero (or the grace period to end), then ends the worker process
(tokend.server.worker), which closes the streams' connections. The Tokenizer's own streams (ChunkStream,
DecodeStream) are counted like unary calls: a document's chunks get the grace period to finish, and a
DecodeStream ends as soon as it would wait for its client (``IdleStreams.drain``, idle_streams.py).

    calls = InFlightCalls()
    server = grpc.server(pool, interceptors=[calls, ...])
    calls.stop_counting()          # draining: later calls are refused, not waited for
    calls.wait_idle(timeout=20)
    calls.count                    # calls still running: cut when the process ends

A call counted here entered the worker before draining began, and the availability gate lets it through even
when draining begins before the call reaches the gate (``entered_before_drain``): between this outermost
interceptor and the gate sit metrics, logging and, under load, a wait for the GIL, and a call already shown in
``tokend_rpc_in_flight`` must be answered, not refused (tests/reliability/test_sigterm.py saw it refused).
Calls that arrive once draining began are refused by the availability gate (UNAVAILABLE). Counting them
would make the drain wait on refusals and, when one is being answered at the moment the worker ends,
report it as a cut call although its client got the clean refusal (tests/reliability/test_sigterm.py
failed on exactly that: ``calls_cut: 1`` with every in-flight call answered).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["InFlightCalls"]


class InFlightCalls(UnaryInterceptor):
    wrap_streams = True

    def __init__(self) -> None:
        self._count = 0
        self._counting = True
        # The count's lock, taken directly per call (a C call each way; ``with`` on the Condition is two Python
        # calls more); the Condition built on it wakes ``wait_idle``.
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._waiting = 0  # threads in ``wait_idle``: a call that ends the count wakes them only if there are any
        self._entered = threading.local()  # per handler thread: whether its current call was counted

    @property
    def count(self) -> int:
        return self._count

    def stop_counting(self) -> None:
        """From now on new calls run uncounted: they arrive after draining began, so the availability gate
        refuses them (health checks answer NOT_SERVING). Call it after the gate switched to draining."""
        with self._idle:
            self._counting = False

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if not self._enter():
            return behaviour(request, context)
        try:
            return behaviour(request, context)
        finally:
            self._leave()

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)  # health Watch, reflection: never waited for
        return self._counted(behaviour, request, context)

    def _counted(self, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if not self._enter():
            yield from behaviour(request, context)
            return
        try:
            yield from behaviour(request, context)
        finally:
            self._leave()

    def entered_before_drain(self) -> bool:
        """Whether the call running in this thread was counted, i.e. entered before ``stop_counting``.

        Meant for the interceptors inside this one (the availability gate): a Tokenizer call runs in one
        handler thread from this interceptor down to the servicer (a stream's generator starts the inner
        ones on its first step, in the thread that steps it)."""
        return getattr(self._entered, "counted", False)

    def _enter(self) -> bool:
        """Count a call that starts now, unless counting stopped; True when it was counted."""
        with self._lock:
            counted = self._counting
            self._count += counted
        self._entered.counted = counted
        return counted

    def _leave(self) -> None:
        with self._lock:
            self._count -= 1
            if self._count == 0 and self._waiting:
                self._idle.notify_all()  # (the Condition's lock is held: it is ``self._lock``)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no unary call or Tokenizer stream runs (True) or ``timeout`` seconds pass (False)."""
        with self._idle:
            self._waiting += 1
            try:
                return self._idle.wait_for(lambda: self._count == 0, timeout=timeout)
            finally:
                self._waiting -= 1
