"""Records the RPC metrics (started, handled by code, handling time, in flight) and the usage metrics
(tokens and input bytes by model, version and operation; batch sizes; piece-cache hits) of every
unary call. Usage comes from the service layer's record of the call (``tokend.service.call_record``),
so the servicer stays a translator.

Usage per operation: "encode" (tokens produced, UTF-8 input bytes), "count" (tokens counted, input bytes),
"decode" (ids decoded; no input bytes), "truncate" and "chunk" (tokens of the answer, input bytes). The
Tokenizer's streams (ChunkStream, DecodeStream) are measured like unary calls, over their whole life (a
stream the client cancelled counts as CANCELLED); other streams (health Watch, reflection) are not measured.

A unary call whose outcome is known only after its handler has answered (``CallRecord.outcome_later``: an answer
holding memory, which gRPC cancels if its client does not read it, unsent_answers.py) is counted handled when it
ends, with the status its client got, timed as its handler when it was answered, else up to its end. Its usage
and ``tokend_rpc_in_flight`` are the handler's (the work was done; in flight counts handlers).

A call whose handler still runs when its worker ends (the grace period is over) is counted handled by ``write_cut``
(the worker calls it before it ends), with the status its client sees then (``running_calls.cut_status``:
UNAVAILABLE), timed up to that moment; its handler, if it returns after, counts nothing.

    server = grpc.server(pool, interceptors=[..., MetricsInterceptor(metrics, served.piece_cache_stats), ...])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from tokend_api import SERVICE_NAME

from tokend.server.metric_writers import adder, observer, subtracter
from tokend.server.metrics import ServerMetrics
from tokend.server.running_calls import RunningCalls, cut_status
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor, stream_end_code
from tokend.service.call_record import CallRecord, recording

__all__ = ["MetricsInterceptor"]


class MetricsInterceptor(UnaryInterceptor):
    wrap_streams = True

    def __init__(self, metrics: ServerMetrics, piece_cache_stats: Callable[[str, int], Any] | None = None) -> None:
        self._metrics = metrics
        self._piece_cache_stats = piece_cache_stats
        # Bounded: methods are the services' own; models and versions are those the registry resolved.
        self._by_method: dict[str, _MethodSeries] = {}
        self._usage: dict[tuple[str, str, int, str], _UsageSeries] = {}
        self._running = RunningCalls()  # context -> (series, started)

    def write_cut(self) -> int:
        """Count handled each call whose handler still runs (the worker is about to end); answers how many."""
        now = time.perf_counter()
        cut = self._running.cut()
        for context, (series, started) in cut:
            series.seconds(now - started)
            series.handled(cut_status(context))(1)
        return len(cut)

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        series = self._by_method.get(method.full) or self._series(method)
        series.started(1)
        series.in_flight(1)
        started = time.perf_counter()
        self._running[context] = (series, started)
        code = grpc.StatusCode.UNKNOWN
        outcome = None
        try:
            with recording() as record:
                response = behaviour(request, context)
                code = context.code() or grpc.StatusCode.OK
                outcome = record.outcome_later
                if code is grpc.StatusCode.OK and record.operation is not None and record.model is not None:
                    self._record_usage(method.method, record)
            return response
        except BaseException:
            code = context.code() or grpc.StatusCode.UNKNOWN
            raise
        finally:
            series.left()
            if self._running.pop(context, None) is None:  # counted by ``write_cut``: the worker is ending
                pass
            elif outcome is None or code is not grpc.StatusCode.OK:
                series.seconds(time.perf_counter() - started)
                series.handled(code)(1)
            else:
                _handled_at_end(outcome, series, started)

    def _series(self, method: MethodName) -> _MethodSeries:
        series = self._by_method.get(method.full)
        if series is None:
            series = self._by_method.setdefault(method.full, _MethodSeries(self._metrics, method))
        return series

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME:
            return behaviour(request, context)
        return self._measured_stream(method, behaviour, request, context)

    def _measured_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        series = self._series(method)
        series.started(1)
        series.in_flight(1)
        started = time.perf_counter()
        self._running[context] = (series, started)
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
            series.left()
            if self._running.pop(context, None) is not None:  # else counted by ``write_cut``
                series.seconds(time.perf_counter() - started)
                series.handled(code)(1)

    def _record_usage(self, method: str, record: CallRecord) -> None:
        name, version = record.model  # type: ignore[misc]
        key = (method, name, version, record.operation)
        usage = self._usage.get(key)
        if usage is None:
            usage = self._usage.setdefault(key, _UsageSeries(self._metrics, *key))
        usage.batch_items(record.items)
        usage.tokens(record.tokens)
        if record.operation == "decode":
            return
        usage.input_bytes(record.input_bytes)
        if self._piece_cache_stats is not None:
            stats = self._piece_cache_stats(name, version)
            if stats is not None:
                self._metrics.record_piece_cache(name, version, stats.hits, stats.misses)


def _handled_at_end(outcome: Any, series: _MethodSeries, started: float) -> None:
    answered = time.perf_counter()

    def write(status: grpc.StatusCode | None, ended: float) -> None:
        code = status or grpc.StatusCode.OK
        series.seconds((answered if code is grpc.StatusCode.OK else ended) - started)
        series.handled(code)(1)

    outcome.then(write)


class _MethodSeries:
    """The writers of one method's labelled series, looked up once (``labels()`` costs a lock and a tuple of str
    per call; metric_writers: a write without prometheus_client's checks of the child)."""

    __slots__ = ("started", "in_flight", "left", "seconds", "_metrics", "_labels", "_handled")

    def __init__(self, metrics: ServerMetrics, method: MethodName) -> None:
        self._metrics = metrics
        self._labels = (method.grpc_type, method.service, method.method)
        self.started = adder(metrics.started.labels(*self._labels))
        in_flight = metrics.in_flight.labels(method.method)
        self.in_flight, self.left = adder(in_flight), subtracter(in_flight)
        self.seconds = observer(metrics.handling_seconds.labels(*self._labels))
        self._handled: dict[grpc.StatusCode, Callable[[float], None]] = {}

    def handled(self, code: grpc.StatusCode) -> Callable[[float], None]:
        """The adder of ``grpc_server_handled_total`` for ``code``."""
        add = self._handled.get(code)
        if add is None:
            add = self._handled.setdefault(code, adder(self._metrics.handled.labels(*self._labels, code.name)))
        return add


class _UsageSeries:
    """The usage series' writers of one (method, model, version, operation)."""

    __slots__ = ("batch_items", "tokens", "input_bytes")

    def __init__(self, metrics: ServerMetrics, method: str, name: str, version: int, operation: str) -> None:
        usage = (name, str(version), operation)
        self.batch_items = observer(metrics.batch_items.labels(method))
        self.tokens = adder(metrics.tokens.labels(*usage))
        self.input_bytes = adder(metrics.input_bytes.labels(*usage))
