"""The worker's Prometheus metrics, named as in DEVELOPERS.md (the contract for dashboards and alerts).

Workers run in prometheus_client's multiprocess mode (the supervisor sets PROMETHEUS_MULTIPROC_DIR
before it starts them), so values from every worker are summed by the supervisor's /metrics
endpoint; gauges say how to combine workers (``multiprocess_mode``). The supervisor's own gauges
(`tokend_workers`, `tokend_worker_restarts_total`) live in `supervisor_metrics`.

Every metric takes an injectable registry, so a test builds a fresh ``ServerMetrics`` per case.

A worker calls ``write_values_under_cached_pid()`` before it builds its ``ServerMetrics``: prometheus_client
asks ``os.getpid()`` (a system call) on every write of a value in multiprocess mode, to notice a fork; a
CountTokens call writes eleven values, and on a busy 2-core machine the calls took 7.6% of the time the
worker's threads held the GIL under load (py-spy, ``python -m bench service percall --profile``). The pid is
read once and again after a fork (``os.register_at_fork``), which is all the check needs.
Labels are fixed, low-cardinality values: method names, status codes, model names and versions.
Nothing from a request's content is ever a label.

    >>> from prometheus_client import CollectorRegistry
    >>> metrics = ServerMetrics(CollectorRegistry())
    >>> metrics.tokens.labels(model="cl100k_base", version="1", operation="encode").inc(3)
"""

from __future__ import annotations

import functools
import operator
import os
import threading
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, values

from tokend.server.metric_writers import adder

__all__ = ["ServerMetrics", "LATENCY_BUCKETS", "BATCH_BUCKETS", "write_values_under_cached_pid", "process_id"]

# Tokenizing a short text takes tens of microseconds; a full 8 MiB batch, seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def process_id() -> int:
    """This process's pid, read once and after each fork (no system call)."""
    return _pid[0]


def write_values_under_cached_pid() -> bool:
    """In multiprocess mode, make the metric values built from now on tell their process by ``process_id``
    rather than ``os.getpid()``; True if it did. Call it before any metric value exists in the process: values
    already built keep their own files (two mappings of one pid's file would overwrite each other)."""
    if values.ValueClass is values.MutexValue:
        return False  # one process: values live in memory, no pid is asked
    if not getattr(values.ValueClass, "tokend_cached_pid", False):  # once: a second class would map the files again
        # A C callable reading ``_pid[0]``, asked on every write: no Python frame (11 a CountTokens call).
        value_class = values.MultiProcessValue(process_identifier=functools.partial(operator.getitem, _pid, 0))
        value_class.tokend_cached_pid = True
        values.ValueClass = value_class
    return True


class ServerMetrics:
    """All metrics a worker records."""

    def __init__(self, registry: CollectorRegistry | None = REGISTRY) -> None:
        rpc_labels = ("grpc_type", "grpc_service", "grpc_method")
        usage_labels = ("model", "version", "operation")
        model_labels = ("model", "version")
        self.started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", rpc_labels, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*rpc_labels, "grpc_code"),
            registry=registry,
        )
        self.handling_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from receiving an RPC to sending its response.",
            rpc_labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "tokend_rpc_in_flight",
            "RPCs being handled now.",
            ("grpc_method",),
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.tokens = Counter(
            "tokend_tokens_total",
            "Tokens produced (encode, count) or consumed (decode).",
            usage_labels,
            registry=registry,
        )
        self.input_bytes = Counter(
            "tokend_input_bytes_total",
            "Bytes of input text or data processed (UTF-8 bytes for text).",
            usage_labels,
            registry=registry,
        )
        self.batch_items = Histogram(
            "tokend_batch_items", "Items per request batch.", ("grpc_method",), buckets=BATCH_BUCKETS, registry=registry
        )
        self.model_load_seconds = Histogram(
            "tokend_model_load_seconds",
            "Time to load one model version into a worker.",
            model_labels,
            buckets=LOAD_BUCKETS,
            registry=registry,
        )
        self.answers_cancelled = Counter(
            "tokend_answers_cancelled_total",
            "Unary calls cancelled because the client did not read their answer in time (--answer-send-seconds);"
            " each is also counted CANCELLED in grpc_server_handled_total once it has ended.",
            registry=registry,
        )
        self.model_load_failures = Counter(
            "tokend_model_load_failures_total", "Model versions that failed to load.", model_labels, registry=registry
        )
        self.model_info = Gauge(
            "tokend_model_info",
            "1 for every model version loaded (in any live worker); 0 once unloaded as unused from every worker.",
            ("model", "version", "payload_format", "sha256"),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.piece_cache_hits = Counter(
            "tokend_piece_cache_hits_total", "Pre-split pieces found in the piece cache.", model_labels, registry=registry
        )
        self.piece_cache_misses = Counter(
            "tokend_piece_cache_misses_total",
            "Pre-split pieces that had to be merged (not in the piece cache).",
            model_labels,
            registry=registry,
        )
        self.ready = Gauge(
            "tokend_ready",
            "1 once the configured models are loaded (the minimum over live workers).",
            multiprocess_mode="livemin",
            registry=registry,
        )
        self._cache_lock = threading.Lock()
        self._cache_seen: dict[tuple[str, str], tuple[int, int]] = {}  # (model, version) -> (hits, misses)
        self._cache_series: dict[tuple[str, str], tuple[Any, Any]] = {}  # (model, version) -> (hits, misses) adders
        self._info_series: dict[tuple[str, str], Any] = {}  # (model, version) -> its tokend_model_info child, while loaded

    # ---- tokend.service.models.ModelObserver: first loads of a model version ----
    def model_loaded(self, loaded: Any, seconds: float, payload_format: str) -> None:
        version = str(loaded.version)
        self.model_load_seconds.labels(loaded.name, version).observe(seconds)
        series = self.model_info.labels(loaded.name, version, payload_format, loaded.manifest_sha256)
        series.set(1)
        with self._cache_lock:
            self._info_series[(loaded.name, version)] = series

    def model_load_failed(self, name: str, version: int) -> None:
        self.model_load_failures.labels(name, str(version)).inc()

    def model_unloaded(self, name: str, version: int) -> None:
        """The version left this worker's memory (unused): its info series 0 here, its piece-cache counters
        counted afresh from the Encoding a reload builds (which starts at zero)."""
        key = (name, str(version))
        with self._cache_lock:
            series = self._info_series.pop(key, None)
            self._cache_seen.pop(key, None)
        if series is not None:
            series.set(0)

    def record_piece_cache(self, model: str, version: int, hits: int, misses: int) -> None:
        """Move the cache counters to the engine's cumulative ``hits``/``misses`` (adds the difference)."""
        key = (model, str(version))
        with self._cache_lock:
            seen_hits, seen_misses = self._cache_seen.get(key, (0, 0))
            if hits <= seen_hits and misses <= seen_misses:
                return
            series = self._cache_series.get(key)
            if series is None:
                series = self._cache_series[key] = (
                    adder(self.piece_cache_hits.labels(*key)), adder(self.piece_cache_misses.labels(*key))
                )
            # The engine's counters only grow; guard anyway so a counter never goes down.
            if hits > seen_hits:
                series[0](hits - seen_hits)
            if misses > seen_misses:
                series[1](misses - seen_misses)
            self._cache_seen[key] = (max(hits, seen_hits), max(misses, seen_misses))
