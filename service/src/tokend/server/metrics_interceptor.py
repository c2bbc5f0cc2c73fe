"""Records the RPC metrics (started, handled by code, handling time, in flight) and the usage metrics
(tokens and input bytes by model, version and operation; batch sizes; piece-cache hits) of every
unary call. Usage is read from the request and the response, so the servicer stays a translator.

Usage per method: Encode → operation "encode" (tokens = total_tokens, bytes = UTF-8 input bytes);
CountTokens → "count" (tokens = total); Decode → "decode" (tokens = ids decoded; no input bytes).
Streaming methods (health Watch, reflection) are not measured.

    server = grpc.server(pool, interceptors=[..., MetricsInterceptor(metrics, served.piece_cache_stats), ...])
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from tokend.server.metrics import ServerMetrics
from tokend.server.request_limits import input_bytes
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["MetricsInterceptor"]

_OPERATIONS = {"Encode": "encode", "CountTokens": "count", "Decode": "decode"}
_TOKENIZER_SERVICE = "tokend.v1.Tokenizer"


class MetricsInterceptor(UnaryInterceptor):
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
            response = behaviour(request, context)
            code = context.code() or grpc.StatusCode.OK
            if code is grpc.StatusCode.OK and method.service == _TOKENIZER_SERVICE:
                self._record_usage(method.method, request, response)
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            in_flight.dec()
            metrics.handling_seconds.labels(*labels).observe(time.perf_counter() - started)
            metrics.handled.labels(*labels, code.name).inc()

    def _record_usage(self, method: str, request: Any, response: Any) -> None:
        operation = _OPERATIONS.get(method)
        if operation is None:
            return
        metrics = self._metrics
        name, version = response.model.name, response.model.version
        usage = (name, str(version), operation)
        metrics.batch_items.labels(method).observe(len(request.inputs))
        if operation == "encode":
            metrics.tokens.labels(*usage).inc(response.total_tokens)
            metrics.input_bytes.labels(*usage).inc(input_bytes(request.inputs))
        elif operation == "count":
            metrics.tokens.labels(*usage).inc(response.total)
            metrics.input_bytes.labels(*usage).inc(input_bytes(request.inputs))
        else:
            metrics.tokens.labels(*usage).inc(sum(len(item.ids) for item in request.inputs))
            return
        if self._piece_cache_stats is not None:
            stats = self._piece_cache_stats(name, version)
            if stats is not None:
                metrics.record_piece_cache(name, version, stats.hits, stats.misses)
