"""The supervisor's /metrics HTTP endpoint: every worker's metrics, aggregated, plus the supervisor's own.

Workers write their values to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client multiprocess
mode); ``MultiProcessCollector`` sums them at scrape time. The supervisor's gauges are computed live
from its state by ``SupervisorCollector`` (it never writes metric files, so its own import of
prometheus_client needs no multiprocess set-up).

Not handled: TLS or authentication on the metrics port (keep it inside the cluster network).

    endpoint = MetricsEndpoint(host="0.0.0.0", port=9464, multiproc_dir=path, supervisor=state)
    endpoint.start(); ...; endpoint.stop()
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["MetricsEndpoint", "SupervisorCollector"]


class SupervisorCollector:
    """``tokend_workers`` (alive now) and ``tokend_worker_restarts_total`` from the supervisor's counts."""

    def __init__(self, alive_workers: Callable[[], int], restarts: Callable[[], int]) -> None:
        self._alive_workers = alive_workers
        self._restarts = restarts

    def collect(self) -> Iterator[Any]:
        yield GaugeMetricFamily("tokend_workers", "Worker processes alive now.", value=self._alive_workers())
        yield CounterMetricFamily(
            "tokend_worker_restarts", "Worker processes restarted after they died.", value=self._restarts()
        )


class MetricsEndpoint:
    def __init__(self, *, host: str, port: int, multiproc_dir: Path, supervisor: SupervisorCollector) -> None:
        self._host = host
        self._port = port
        self.registry = CollectorRegistry()
        MultiProcessCollector(self.registry, path=str(multiproc_dir))
        self.registry.register(supervisor)
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> int:
        """Start serving in a daemon thread; returns the bound port."""
        self._server, self._thread = start_http_server(self._port, addr=self._host, registry=self.registry)
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
