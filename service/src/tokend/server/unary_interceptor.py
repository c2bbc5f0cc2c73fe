"""A base for server interceptors that wrap unary-unary methods (every tokend.v1 RPC, health Check).

Subclasses implement ``handle(method, behaviour, request, context)`` and call
``behaviour(request, context)`` to continue the chain. Streaming methods (health Watch, reflection, the
Tokenizer's ChunkStream and DecodeStream) pass through untouched unless the subclass sets ``wrap_streams``
and implements ``handle_stream``, which returns the response iterator (usually a generator wrapping
``behaviour``'s, so that its work happens while the stream runs).

    class Timing(UnaryInterceptor):
        def handle(self, method, behaviour, request, context):
            started = time.perf_counter()
            try:
                return behaviour(request, context)
            finally:
                print(method.full, time.perf_counter() - started)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from tokend.service.batch import DEADLINE_SLACK_SECONDS

__all__ = ["MethodName", "UnaryInterceptor", "stream_end_code"]


@dataclass(frozen=True)
class MethodName:
    """``/tokend.v1.Tokenizer/Encode`` split into service and method, plus the gRPC call type."""

    full: str
    service: str
    method: str
    grpc_type: str  # "unary", "server_stream", "client_stream", "bidi_stream"

    @classmethod
    def parse(cls, full: str, grpc_type: str) -> MethodName:
        service, _, method = full.lstrip("/").rpartition("/")
        return cls(full, service or "unknown", method or full, grpc_type)


def _grpc_type(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming and handler.response_streaming:
        return "bidi_stream"
    if handler.request_streaming:
        return "client_stream"
    if handler.response_streaming:
        return "server_stream"
    return "unary"


class UnaryInterceptor(grpc.ServerInterceptor):
    wrap_streams = False
    wrap_unary = True  # False: calls with a single response message pass through untouched (``handle`` is not called)

    def wrap_deserializer(self, method: MethodName, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        """The request deserializer this interceptor's handler of ``method`` uses (interceptors further out
        copy it)."""
        return deserializer

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        raise NotImplementedError

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        return behaviour(request, context)

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = MethodName.parse(handler_call_details.method, _grpc_type(handler))
        common = {
            "request_deserializer": self.wrap_deserializer(method, handler.request_deserializer),
            "response_serializer": handler.response_serializer,
        }
        if not self.wrap_unary and not handler.response_streaming:
            return handler
        # The handler grpcio calls is ``partial(self.handle, method, inner)``: called in C, no closure's frame per
        # interceptor and call (eight unary interceptors wrap each Tokenizer call).
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(functools.partial(self.handle, method, handler.unary_unary), **common)
        if not self.wrap_streams:
            return handler
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(functools.partial(self.handle_stream, method, handler.unary_stream), **common)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(functools.partial(self.handle, method, handler.stream_unary), **common)
        return grpc.stream_stream_rpc_method_handler(functools.partial(self.handle_stream, method, handler.stream_stream), **common)


def stream_end_code(context: Any) -> grpc.StatusCode:
    """The status of a stream that ended by an exception: the one set on it; or, when gRPC stopped asking
    for messages and closed the stream without a status of ours, DEADLINE_EXCEEDED if the call's deadline
    had passed (gRPC saw it before our loop's next check did; the same slack as ``check_call``), else
    CANCELLED (its client went away)."""
    code = context.code()
    if code is not None:
        return code
    if context.is_active():
        return grpc.StatusCode.UNKNOWN
    remaining = context.time_remaining()
    if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
