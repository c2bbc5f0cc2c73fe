"""Turns any exception a method raises into a gRPC status with details — via ``status_mapping`` only.

Request bytes that do not parse (e.g. invalid UTF-8 in a string field) would make grpcio answer INTERNAL
("Exception deserializing request!") before any handler runs; this interceptor's deserializer turns them
into an ``UndecodableRequest`` instead, answered INVALID_ARGUMENT like any other bad input.

A Tokenizer request message of ``DEFERRED_PARSE_BYTES`` or more is not parsed by the deserializer but
handed on as a ``DeferredRequest`` and parsed here, on the call's handler thread. Why: grpcio runs request
deserializers on the worker's one polling thread, which every other call of the worker needs to start and
to end; parsing 8 MiB there (UTF-8 checks, a str of the text: ~5-10 ms, even with the GIL released) held
up every small call that arrived meanwhile (a well-behaved CountTokens waited 25-49 ms for the polling
thread beside two 8 MiB Encodes; docs/decisions.md). Small messages are still parsed at once (well under a
millisecond), and other services' (health, reflection) always.

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

__all__ = ["ErrorInterceptor", "UndecodableRequest", "DeferredRequest", "DEFERRED_PARSE_BYTES"]

# Request messages of at least this many bytes are parsed on the handler thread (DeferredRequest).
DEFERRED_PARSE_BYTES = 64 << 10

_log = logging.getLogger("tokend.server.errors")


class UndecodableRequest:
    """Stands in for a request message whose bytes did not parse; never reaches a servicer."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class DeferredRequest:
    """A large request message's bytes, parsed by ``parsed()`` on the handler thread; never reaches a
    servicer (``ErrorInterceptor`` parses it first). Interceptors further out that read the message's
    fields (the request log's model and items) get the parsed message's."""

    __slots__ = ("_data", "_parse", "_message")

    def __init__(self, data: bytes, parse: Callable[[bytes], Any]) -> None:
        self._data: bytes | None = data
        self._parse = parse
        self._message: Any = None

    def parsed(self) -> Any:
        """The message (or an ``UndecodableRequest``), parsed once; the bytes are let go."""
        if self._data is not None:
            data, self._data = self._data, None
            self._message = self._parse(data)
        return self._message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parsed(), name)


def _tolerant(deserializer: Callable[[bytes], Any], *, defer: bool) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError and friends: bad input, not a bug
            return UndecodableRequest(f"{type(exc).__name__}: {exc}")

    if not defer:
        return parse

    def deserialize(data: bytes) -> Any:
        return DeferredRequest(data, parse) if len(data) >= DEFERRED_PARSE_BYTES else parse(data)

    return deserialize


def _parsed(request: Any) -> Any:
    return request.parsed() if isinstance(request, DeferredRequest) else request


class ErrorInterceptor(UnaryInterceptor):
    wrap_streams = True

    def wrap_deserializer(self, method: MethodName, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        return None if deserializer is None else _tolerant(deserializer, defer=method.service == SERVICE_NAME)

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        with recording() as record:
            try:
                # A client stream's messages are parsed (and refused) as they are read.
                request = _decoded_messages(request, method) if method.grpc_type == "client_stream" else _parsed(request)
                if isinstance(request, UndecodableRequest):
                    raise InvalidRequest(
                        "request", f"the request bytes do not parse as the {method.method} request message ({request.reason})"
                    )
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
                elif isinstance(request := _parsed(request), UndecodableRequest):
                    raise InvalidRequest(
                        "request", f"the request bytes do not parse as the {method.method} request message ({request.reason})"
                    )
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
        message = _parsed(message)
        if isinstance(message, UndecodableRequest):
            raise InvalidRequest(
                f"messages[{index}]",
                f"the request bytes do not parse as the {method.method} request message ({message.reason})",
            )
        yield message
