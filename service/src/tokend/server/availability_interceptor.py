"""The availability gate as an interceptor: Tokenizer calls get UNAVAILABLE while the worker is starting
or draining; health checks and reflection always pass.

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), AvailabilityInterceptor(availability)])

It sits inside the error interceptor, which turns its ServiceUnavailable into the status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.availability import Availability
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["AvailabilityInterceptor"]


class AvailabilityInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self, availability: Availability) -> None:
        self._availability = availability

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if method.service == SERVICE_NAME:
            self._availability.require_serving()
        return behaviour(request, context)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service == SERVICE_NAME:
            self._availability.require_serving()  # raised inside the error interceptor's stream, which maps it
        return behaviour(request, context)
