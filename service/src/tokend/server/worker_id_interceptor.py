"""Adds initial metadata ``tokend-worker: <pid>`` to every response (errors and streams included),
so an operator or a test can see which worker process answered a call.

    server = grpc.server(pool, interceptors=[WorkerIdInterceptor(os.getpid()), ...])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import WORKER_METADATA_KEY

from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["WorkerIdInterceptor"]


class WorkerIdInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self, pid: int) -> None:
        self._metadata = ((WORKER_METADATA_KEY, str(pid)),)

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        context.send_initial_metadata(self._metadata)
        return behaviour(request, context)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        context.send_initial_metadata(self._metadata)
        return behaviour(request, context)
