"""The supervisor's /metrics HTTP endpoint: every worker's metrics, aggregated, plus the supervisor's own.

Workers write their values to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client multiprocess
mode); ``MultiProcessCollector`` sums them at scrape time, a sum started at most every SCRAPE_INTERVAL
seconds however many scrapes arrive (``SharedCollection``: the scrapes of a burst share one, each still
getting values summed after it arrived). The supervisor's gauges are computed live from its state by
``SupervisorCollector`` (it never writes metric files, so its own import of prometheus_client needs no
multiprocess set-up).

Served by ``tokend.http_listener.HttpListener`` (prometheus_client's WSGI app on a thread per connection):
its ``start_http_server`` listens with socketserver's backlog of 5, so 39 of 50 simultaneous scrapes waited
≥ 1 s, and printed a traceback for every scraper that went away.

Not handled: TLS or authentication on the metrics port (keep it inside the cluster network).

    endpoint = MetricsEndpoint(host="0.0.0.0", port=9464, multiproc_dir=path, supervisor=state)
    endpoint.start(); ...; endpoint.stop()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from tokend.http_listener import HttpListener
from tokend.supervisor.shared_collection import SharedCollection

__all__ = ["MetricsEndpoint", "SupervisorCollector", "MAX_SCRAPES", "SCRAPE_INTERVAL"]

# Connections served at once; more get a 503 with Retry-After.
MAX_SCRAPES = 64
# Seconds between the starts of two sums of the workers' files (~4 ms of CPU each): at most 2% of a core
# whatever the scrape rate.
SCRAPE_INTERVAL = 0.25


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


class _MetricsServer(HttpListener, WSGIServer):
    """HttpListener's bounds around wsgiref's WSGI plumbing (``set_app``, the WSGI environment)."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (a line per scrape is noise)
        pass


class MetricsEndpoint:
    def __init__(self, *, host: str, port: int, multiproc_dir: Path, supervisor: SupervisorCollector) -> None:
        self._host = host
        self._port = port
        self.registry = CollectorRegistry()
        workers = MultiProcessCollector(None, path=str(multiproc_dir))
        self.workers = SharedCollection(workers, min_interval=SCRAPE_INTERVAL)
        self.registry.register(self.workers)
        self.registry.register(supervisor)
        self._server: Any = None
        self._thread: Any = None

    def start(self) -> int:
        """Start serving in a daemon thread; returns the bound port."""
        self._server = _MetricsServer((self._host, self._port), _QuietHandler, max_connections=MAX_SCRAPES)
        self._server.set_app(make_wsgi_app(self.registry))
        self._thread = threading.Thread(target=self._server.serve_forever, name="tokend-metrics", daemon=True)
        self._thread.start()
        return self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
