"""Turns any exception a method raises into a gRPC status with details — via ``status_mapping`` only.

Request bytes that do not parse (e.g. invalid UTF-8 in a string field) would make grpcio answer INTERNAL
("Exception deserializing request!") before any handler runs; this interceptor's deserializer turns them
into an ``UndecodableRequest`` instead, answered INVALID_ARGUMENT like any other bad input.

An exception the table does not know is a bug: the caller gets INTERNAL and the traceback is logged
(with the method and model, never the request's content). The worker keeps serving either way.

Tokenizer streams (ChunkStream, DecodeStream) get the same treatment while they run: an error raised
between two messages ends the stream with its status; an undecodable request message is INVALID_ARGUMENT;
a stream whose client went away ends without a status of ours (gRPC has already closed it).

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor()])
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from grpc_status import rpc_status
from tokend_api import SERVICE_NAME

from tokend.logs import log_event
from tokend.server.status_mapping import to_rpc_status
from tokend.service.call_record import recording
from tokend.service.errors import InvalidRequest, describe, echo
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["ErrorInterceptor", "UndecodableRequest", "tolerant"]

_log = logging.getLogger("tokend.server.errors")


class UndecodableRequest:
    """Stands in for a request message whose bytes did not parse; never reaches a servicer."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def refusal(self, method: MethodName, where: str = "request") -> InvalidRequest:
        """The error the caller gets (INVALID_ARGUMENT), naming the method's request message."""
        return InvalidRequest(where, f"the request bytes do not parse as the {method.method} request message ({self.reason})")


def tolerant(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError and friends: bad input, not a bug
            return UndecodableRequest(f"{type(exc).__name__}: {exc}")

    return deserialize


class ErrorInterceptor(UnaryInterceptor):
    wrap_streams = True

    def wrap_deserializer(self, method: MethodName, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        return None if deserializer is None else tolerant(deserializer)

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        with recording() as record:
            # The call's reserved memory is given back once its answer has been sent, not once it is queued: grpcio
            # queues a unary answer and returns, and a client that does not read (an HTTP/2 window it never opens)
            # kept it there until its connection's end (48 Decodes of 15 MiB answers: a worker 83 -> 1,570 MiB).
            # (unsent_answers.py replaces it for a call that holds memory: its answer's send is timed as well.)
            record.end_after = context.add_callback
            try:
                if isinstance(request, UndecodableRequest):
                    raise request.refusal(method)
                return behaviour(request, context)
            except Exception as exc:
                if context.code() is not None:
                    raise  # already aborted with a status further in: keep it
                status, is_bug = to_rpc_status(exc)
                if is_bug:
                    log_event(
                        _log,
                        "rpc_internal_error",
                        level=logging.ERROR,
                        exc_info=exc,
                        method=method.full,
                        model=record.model[0] if record.model else echo(str(getattr(request, "model", "") or "")) or None,
                        version=record.model[1] if record.model else None,
                        error_type=type(exc).__name__,
                    )
                context.abort_with_status(rpc_status.to_status(status))
                raise  # not reached: abort_with_status raises

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._stream(method, behaviour, request, context)

    def _stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        with recording() as record:
            try:
                if method.grpc_type in ("client_stream", "bidi_stream"):
                    request = _decoded_messages(request, method)
                elif isinstance(request, UndecodableRequest):
                    raise request.refusal(method)
                yield from behaviour(request, context)
            except Exception as exc:
                if context.code() is not None or (not context.is_active() and describe(exc) is None):
                    raise  # already aborted further in, or the client went away (gRPC's own error: it closed the call)
                status, is_bug = to_rpc_status(exc)
                if is_bug:
                    log_event(
                        _log, "rpc_internal_error", level=logging.ERROR, exc_info=exc, method=method.full,
                        model=record.model[0] if record.model else None,
                        version=record.model[1] if record.model else None, error_type=type(exc).__name__,
                    )  # fmt: skip
                context.abort_with_status(rpc_status.to_status(status))
                raise  # not reached: abort_with_status raises


def _decoded_messages(messages: Iterable[Any], method: MethodName) -> Iterator[Any]:
    for index, message in enumerate(messages):
        if isinstance(message, UndecodableRequest):
            raise message.refusal(method, f"messages[{index}]")
        yield message
