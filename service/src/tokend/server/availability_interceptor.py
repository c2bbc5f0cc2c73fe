"""The availability gate as an interceptor: Tokenizer calls get UNAVAILABLE while the worker is starting
or draining; health checks and reflection always pass. A call that entered the worker before draining began
(counted by ``InFlightCalls``, the outermost interceptor) passes even if draining began since: it is in flight,
and the drain waits for it.

    calls = InFlightCalls()
    server = grpc.server(pool, interceptors=[calls, ..., ErrorInterceptor(), AvailabilityInterceptor(availability, calls)])

It sits inside the error interceptor, which turns its ServiceUnavailable into the status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.availability import Availability, Phase
from tokend.server.in_flight import InFlightCalls
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["AvailabilityInterceptor"]


class AvailabilityInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self, availability: Availability, calls: InFlightCalls | None = None) -> None:
        self._availability = availability
        self._calls = calls

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if method.service == SERVICE_NAME:
            self._require_admitted()
        return behaviour(request, context)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service == SERVICE_NAME:
            self._require_admitted()  # raised inside the error interceptor's stream, which maps it
        return behaviour(request, context)

    def _require_admitted(self) -> None:
        if self._calls is not None and self._availability.phase is Phase.DRAINING and self._calls.entered_before_drain():
            return
        self._availability.require_serving()
