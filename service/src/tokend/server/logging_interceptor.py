"""One JSON log line per failed call (and per call at debug level): method, model, version, code.

Fields are the method, the model reference and resolved version, the status code, the number of
batch items and the duration. Never the text, bytes or ids of the request, nor the error message
(it can quote a caller-chosen special-token string); a model reference that did not resolve is cut to a
bounded prefix (``echo``).

A call whose outcome is known only after its handler has answered (``CallRecord.outcome_later``: an answer
holding memory, which gRPC cancels if its client does not read it, unsent_answers.py) is logged when it ends,
with the status its client got: its duration is its handler's when it was answered, else up to its end.

A call whose handler still runs when its worker ends (the grace period is over) is logged by ``write_cut`` (the
worker calls it before it ends), with the status its client sees then (``running_calls.cut_status``: UNAVAILABLE);
its handler, if it returns after, logs nothing.

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
from tokend.server.running_calls import RunningCalls, cut_status
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor, stream_end_code
from tokend.service.call_record import recording
from tokend.service.errors import echo

__all__ = ["LoggingInterceptor"]

_log = logging.getLogger("tokend.server.rpc")

# Codes that mean the server (not the caller) has a problem.
_SERVER_SIDE = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS, grpc.StatusCode.FAILED_PRECONDITION}


class LoggingInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self) -> None:
        self._running = RunningCalls()  # context -> (record, method, request, started)

    def write_cut(self) -> int:
        """Log each call whose handler still runs (the worker is about to end); answers how many."""
        now = time.perf_counter()
        cut = self._running.cut()
        for context, (record, method, request, started) in cut:
            code = cut_status(context)
            level = _level(code)
            if _log.isEnabledFor(level):
                _write(level, method, _fields(record, request), code, now - started)
        return len(cut)

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
            self._running[context] = (record, method, request, started)
            code = grpc.StatusCode.UNKNOWN
            try:
                yield from behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
            except BaseException:
                code = stream_end_code(context)
                raise
            finally:
                if self._running.pop(context, None) is not None:  # else logged by ``write_cut``
                    self._log(record, method, request, code, started)

    def _handle(self, record: Any, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        started = time.perf_counter()
        self._running[context] = (record, method, request, started)
        code = grpc.StatusCode.UNKNOWN
        try:
            response = behaviour(request, context)
            code = context.code() or grpc.StatusCode.OK
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            if self._running.pop(context, None) is None:  # logged by ``write_cut``: the worker is ending
                pass
            elif record.outcome_later is None or code is not grpc.StatusCode.OK:
                self._log(record, method, request, code, started)
            else:
                self._log_at_end(record.outcome_later, _fields(record, request), method, started)

    def _log(self, record: Any, method: MethodName, request: Any, code: grpc.StatusCode, started: float) -> None:
        if code is grpc.StatusCode.OK:  # (not _level: a function call more on every call)
            level = logging.DEBUG
        elif code in _SERVER_SIDE:
            level = logging.ERROR
        else:
            level = logging.WARNING
        if _log.isEnabledFor(level):
            _write(level, method, _fields(record, request), code, time.perf_counter() - started)

    def _log_at_end(self, outcome: Any, fields: tuple[Any, Any, Any], method: MethodName, started: float) -> None:
        # The fields are taken now: the request (up to the largest message) is not kept until the call's end.
        answered = time.perf_counter()

        def write(status: grpc.StatusCode | None, ended: float) -> None:
            code = status or grpc.StatusCode.OK
            level = _level(code)
            if _log.isEnabledFor(level):
                _write(level, method, fields, code, (answered if code is grpc.StatusCode.OK else ended) - started)

        outcome.then(write)


def _level(code: grpc.StatusCode) -> int:
    if code is grpc.StatusCode.OK:
        return logging.DEBUG
    if code in _SERVER_SIDE:
        return logging.ERROR
    return logging.WARNING


def _fields(record: Any, request: Any) -> tuple[Any, Any, Any]:
    """(model, version, items) of the call's log line."""
    model = record.model
    inputs = getattr(request, "inputs", None)
    return (
        model[0] if model else (echo(str(getattr(request, "model", "") or "")) or None),
        model[1] if model else None,
        len(inputs) if inputs is not None else None,
    )


def _write(level: int, method: MethodName, fields: tuple[Any, Any, Any], code: grpc.StatusCode, seconds: float) -> None:
    model, version, items = fields
    log_event(
        _log,
        "rpc" if code is grpc.StatusCode.OK else "rpc_error",
        level=level,
        method=method.full,
        model=model,
        version=version,
        code=code.name,
        items=items,
        ms=round(seconds * 1000, 3),
    )
