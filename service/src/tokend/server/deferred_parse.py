"""Large Tokenizer request messages are parsed on the call's handler thread, after the availability gate,
not by grpcio on its polling thread.

Why: grpcio runs request deserializers on the worker's one polling thread, which every other call of the
worker needs to start and to end; parsing 6-8 MiB there (UTF-8 checks, a str of the text: 2.4-4.5 ms, even
with the GIL released) held up every call that arrived meanwhile. So a message of ``DEFERRED_PARSE_BYTES``
or more is handed on unparsed, as a ``DeferredRequest``, and ``DeferredParse``, the innermost interceptor,
parses it just before the servicer runs. Innermost, because a call the availability gate let in must not be
refused later: parsing before the gate, a call that was in flight when draining began (counted, visible in
the metrics) could be refused UNAVAILABLE once its parse ended (tests/reliability/test_sigterm.py caught it).
Bytes that do not parse are INVALID_ARGUMENT as anywhere else (``UndecodableRequest.refusal``). Small
messages, and other services' (health, reflection), are parsed by grpcio as before.

    interceptors=[..., ErrorInterceptor(), AvailabilityInterceptor(availability), StreamSlots(), DeferredParse()]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.error_interceptor import UndecodableRequest, tolerant
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["DeferredParse", "DeferredRequest", "DEFERRED_PARSE_BYTES"]

# Request messages of at least this many bytes are parsed on the handler thread.
DEFERRED_PARSE_BYTES = 64 << 10


class DeferredRequest:
    """A large request message's bytes until ``parsed()``. Interceptors further out that read the message's
    fields (the request log's model and items) get the parsed message's (or none, if it did not parse)."""

    __slots__ = ("_data", "_parse", "_message")

    def __init__(self, data: bytes, parse: Callable[[bytes], Any]) -> None:
        """``parse``: the message or an ``UndecodableRequest`` (error_interceptor.tolerant)."""
        self._data: bytes | None = data
        self._parse = parse
        self._message: Any = None

    def parsed(self) -> Any:
        """The message, or an ``UndecodableRequest``; parsed once, the bytes let go."""
        if self._data is not None:
            data, self._data = self._data, None
            self._message = self._parse(data)
        return self._message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parsed(), name)


class DeferredParse(UnaryInterceptor):
    wrap_streams = True

    def wrap_deserializer(self, method: MethodName, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None or method.service != SERVICE_NAME:
            return deserializer

        parse = tolerant(deserializer)

        def deserialize(data: bytes) -> Any:
            return DeferredRequest(data, parse) if len(data) >= DEFERRED_PARSE_BYTES else deserializer(data)

        return deserialize

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if method.grpc_type == "client_stream":
            return behaviour(_parsed_messages(request, method), context)
        return behaviour(_parsed(request, method), context)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.grpc_type == "bidi_stream":
            return behaviour(_parsed_messages(request, method), context)
        return behaviour(_parsed(request, method), context)


def _parsed(request: Any, method: MethodName, where: str = "request") -> Any:
    if not isinstance(request, DeferredRequest):
        return request
    message = request.parsed()
    if isinstance(message, UndecodableRequest):
        raise message.refusal(method, where)
    return message


def _parsed_messages(messages: Iterable[Any], method: MethodName) -> Iterator[Any]:
    for index, message in enumerate(messages):
        yield _parsed(message, method, f"messages[{index}]")
