"""The worker's interceptors as one grpc interceptor that composes their handlers once per method.

Why: grpcio runs a server's interceptors for *every* call, in its single polling thread, before a handler
thread gets the call: each interceptor builds a new method handler around the next one's. Seven of them
cost ~15 µs per call in that thread, which every other call of the worker waits behind. The composed
handler depends only on the method (its name, call type and the registered handler grpcio returns for it,
the same object for every call), so the chain builds it on the first call of a method and reuses it.

Each interceptor stays a plain ``grpc.ServerInterceptor`` (outermost first, as ``grpc.server`` takes them)
and sees the same calls, in the same order, as it would in ``grpc.server(interceptors=[...])``.

    server = grpc.server(pool, interceptors=[InterceptorChain([calls, metrics, logging, errors])])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import grpc

__all__ = ["InterceptorChain"]


class InterceptorChain(grpc.ServerInterceptor):
    def __init__(self, interceptors: Sequence[grpc.ServerInterceptor]) -> None:
        self._interceptors = tuple(interceptors)
        self._lock = threading.Lock()
        self._composed: dict[str, tuple[Any, Any]] = {}  # method -> (grpcio's handler, composed handler)

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        cached = self._composed.get(handler_call_details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        composed = handler
        for interceptor in reversed(self._interceptors):
            composed = interceptor.intercept_service(lambda _details, inner=composed: inner, handler_call_details)
            if composed is None:  # an interceptor that refuses the method (none of ours does)
                return None
        with self._lock:
            self._composed[handler_call_details.method] = (handler, composed)
        return composed
