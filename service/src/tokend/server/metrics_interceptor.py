"""Records the RPC metrics (started, handled by code, handling time, in flight) and the usage metrics
(tokens and input bytes by model, version and operation; batch sizes; piece-cache hits) of every
unary call. Usage comes from the service layer's record of the call (``tokend.service.call_record``),
so the servicer stays a translator.

Usage per operation: "encode" (tokens produced, UTF-8 input bytes), "count" (tokens counted, input bytes),
"decode" (ids decoded; no input bytes), "truncate" and "chunk" (tokens of the answer, input bytes). The
Tokenizer's streams (ChunkStream, DecodeStream) are measured like unary calls, over their whole life (a
stream the client cancelled counts as CANCELLED); other streams (health Watch, reflection) are not measured.

    server = grpc.server(pool, interceptors=[..., MetricsInterceptor(metrics, served.piece_cache_stats), ...])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from tokend_api import SERVICE_NAME

from tokend.server.metrics import ServerMetrics
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor, stream_end_code
from tokend.service.call_record import CallRecord, recording

__all__ = ["MetricsInterceptor"]


class MetricsInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self, metrics: ServerMetrics, piece_cache_stats: Callable[[str, int], Any] | None = None) -> None:
        self._metrics = metrics
        self._piece_cache_stats = piece_cache_stats

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        labels = (method.grpc_type, method.service, method.method)
        metrics = self._metrics
        metrics.started.labels(*labels).inc()
        in_flight = metrics.in_flight.labels(method.method)
        in_flight.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            with recording() as record:
                response = behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                if code is grpc.StatusCode.OK and record.operation is not None and record.model is not None:
                    self._record_usage(method.method, record)
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            in_flight.dec()
            metrics.handling_seconds.labels(*labels).observe(time.perf_counter() - started)
            metrics.handled.labels(*labels, code.name).inc()

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._measured_stream(method, behaviour, request, context)

    def _measured_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        labels = (method.grpc_type, method.service, method.method)
        metrics = self._metrics
        metrics.started.labels(*labels).inc()
        in_flight = metrics.in_flight.labels(method.method)
        in_flight.inc()
        started = time.perf_counter()
        code = grpc.StatusCode.UNKNOWN
        try:
            with recording() as record:
                yield from behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                if code is grpc.StatusCode.OK and record.operation is not None and record.model is not None:
                    self._record_usage(method.method, record)
        except BaseException:
            code = stream_end_code(context)
            raise
        finally:
            in_flight.dec()
            metrics.handling_seconds.labels(*labels).observe(time.perf_counter() - started)
            metrics.handled.labels(*labels, code.name).inc()

    def _record_usage(self, method: str, record: CallRecord) -> None:
        metrics = self._metrics
        name, version = record.model  # type: ignore[misc]
        usage = (name, str(version), record.operation)
        metrics.batch_items.labels(method).observe(record.items)
        metrics.tokens.labels(*usage).inc(record.tokens)
        if record.operation == "decode":
            return
        metrics.input_bytes.labels(*usage).inc(record.input_bytes)
        if self._piece_cache_stats is not None:
            stats = self._piece_cache_stats(name, version)
            if stats is not None:
                metrics.record_piece_cache(name, version, stats.hits, stats.misses)

