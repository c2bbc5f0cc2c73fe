"""Large Tokenizer calls run on the worker's bulk lane (``tokend.service.bulk_lane``): their request's parse,
the service call and, for Encode, the writing of the answer's bytes — at the lowest CPU priority, so the
small calls' handler threads get the cores first.

A call is large by its request's wire size (``min_bytes``, the ``--bulk-lane-bytes`` setting), known
before anything is parsed: the request deserializer leaves a message of that size unparsed
(``DeferredRequest``) and ``handle`` parses it on the lane (protobuf's parse of 8 MiB holds the GIL for
milliseconds, ~100,000 listed strings for tens). Bytes that do not parse get the error interceptor's
INVALID_ARGUMENT. Sits inside the availability gate (a draining worker refuses before queueing) and the
error interceptor (the lane's UNAVAILABLE / DEADLINE_EXCEEDED / CANCELLED map like any other error).

    lane = BulkLane()
    chain = [..., ErrorInterceptor(), AvailabilityInterceptor(availability), BulkLaneInterceptor(lane, 1 << 20), ...]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.encode_answer import EncodeAnswer, serialize_encode_response
from tokend.server.error_interceptor import UndecodableRequest, undecodable
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.service.bulk_lane import BulkLane
from tokend.settings.model import DEFAULT_BULK_LANE_BYTES

__all__ = ["BulkLaneInterceptor", "DeferredRequest"]



class DeferredRequest:
    """A request message's bytes, parsed on the lane; attributes are the parsed message's once it is."""

    __slots__ = ("data", "_deserializer", "message")

    def __init__(self, data: bytes, deserializer: Callable[[bytes], Any]) -> None:
        self.data = data
        self._deserializer = deserializer
        self.message: Any = None

    def parse(self) -> Any:
        """The message, or an ``UndecodableRequest``."""
        try:
            self.message = self._deserializer(self.data)
        except Exception as exc:  # protobuf's DecodeError and friends: bad input, not a bug
            return UndecodableRequest(f"{type(exc).__name__}: {exc}")
        self.data = b""
        return self.message

    def __getattr__(self, name: str) -> Any:  # the logging interceptor reads ``model`` and ``inputs``
        if self.message is None:
            raise AttributeError(name)
        return getattr(self.message, name)


class BulkLaneInterceptor(UnaryInterceptor):
    def __init__(self, lane: BulkLane, min_bytes: int = DEFAULT_BULK_LANE_BYTES) -> None:
        self._lane = lane
        self._min_bytes = min_bytes

    def wrap_deserializer(self, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None or self._min_bytes <= 0:
            return deserializer
        min_bytes = self._min_bytes

        def deserialize(data: bytes) -> Any:
            if len(data) < min_bytes:
                return deserializer(data)
            return DeferredRequest(data, deserializer)

        return deserialize

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if not isinstance(request, DeferredRequest):
            return behaviour(request, context)
        if method.service != SERVICE_NAME:  # large health or reflection requests: not bulk work
            return self._finish(method, behaviour, request, context)
        return self._lane.run(lambda: self._finish(method, behaviour, request, context), call=context)

    def _finish(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: DeferredRequest, context: Any) -> Any:
        message = request.parse()
        if isinstance(message, UndecodableRequest):
            raise undecodable(method, message)
        response = behaviour(message, context)
        if isinstance(response, EncodeAnswer):
            return serialize_encode_response(response)  # its bytes, written here rather than on the handler thread
        return response
