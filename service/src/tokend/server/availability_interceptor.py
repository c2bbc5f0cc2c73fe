"""The availability gate as an interceptor: Tokenizer calls get UNAVAILABLE while the worker is starting
or draining; health checks and reflection always pass.

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), AvailabilityInterceptor(availability)])

It sits inside the error interceptor, which turns its ServiceUnavailable into the status.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.availability import Availability
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["AvailabilityInterceptor"]


class AvailabilityInterceptor(UnaryInterceptor):
    def __init__(self, availability: Availability) -> None:
        self._availability = availability

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if method.service == SERVICE_NAME:
            self._availability.require_serving()
        return behaviour(request, context)
