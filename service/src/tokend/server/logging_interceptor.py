"""One JSON log line per failed call (and per call at debug level): method, model, version, code.

Fields are the method, the model reference and resolved version, the status code, the number of
batch items and the duration. Never the text, bytes or ids of the request, nor the error message
(it can quote a caller-chosen special-token string); a model reference that did not resolve is cut to a
bounded prefix (``echo``).

    server = grpc.server(pool, interceptors=[..., LoggingInterceptor(), ErrorInterceptor()])
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from tokend_api import SERVICE_NAME

from tokend.logs import log_event
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor, stream_end_code
from tokend.service.call_record import recording
from tokend.service.errors import echo

__all__ = ["LoggingInterceptor"]

_log = logging.getLogger("tokend.server.rpc")

# Codes that mean the server (not the caller) has a problem.
_SERVER_SIDE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.FAILED_PRECONDITION}


class LoggingInterceptor(UnaryInterceptor):
    wrap_streams = True

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        with recording() as record:
            return self._handle(record, method, behaviour, request, context)

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._logged_stream(method, behaviour, request, context)

    def _logged_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        with recording() as record:
            started = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                yield from behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
            except BaseException:
                code = stream_end_code(context)
                raise
            finally:
                self._log(record, method, request, code, started)

    def _handle(self, record: Any, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            response = behaviour(request, context)
            code = context.code() or grpc.StatusCode.OK
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            self._log(record, method, request, code, started)

    def _log(self, record: Any, method: MethodName, request: Any, code: grpc.StatusCode, started: float) -> None:
        model = record.model
        if code is grpc.StatusCode.OK:
            level = logging.DEBUG
        elif code in _SERVER_SIDE:
            level = logging.ERROR
        else:
            level = logging.WARNING
        if _log.isEnabledFor(level):
            inputs = getattr(request, "inputs", None)
            log_event(
                _log,
                "rpc" if code is grpc.StatusCode.OK else "rpc_error",
                level=level,
                method=method.full,
                model=model[0] if model else (echo(str(getattr(request, "model", "") or "")) or None),
                version=model[1] if model else None,
                code=code.name,
                items=len(inputs) if inputs is not None else None,
                ms=round((time.perf_counter() - started) * 1000, 3),
            )
