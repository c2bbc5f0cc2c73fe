"""The supervisor: the parent process of `tokend serve`. It starts N workers, replaces dead ones,
serves /metrics for all of them, runs the playground, and on SIGTERM/SIGINT drains everything.

Spawn, not fork (deliberate). Workers are started with multiprocessing's *spawn* method: each is a
fresh interpreter that imports tokend and builds its own gRPC server. Fork was rejected because the
supervisor is multi-threaded by the time it *re*starts a worker (the metrics HTTP server thread), and
forking a threaded process can copy a lock held by another thread into the child, which then hangs;
gRPC's C core also has threads and is only fork-safe with GRPC_ENABLE_FORK_SUPPORT and strict rules.
Spawn costs an interpreter start per worker (≈0.5 s, once) and no memory sharing — which fork would
not give here anyway: each worker loads its models after start, and CPython's reference counting
would unshare copy-on-write pages. The parent never creates a gRPC object at all.

Workers share the port with SO_REUSEPORT (set in grpc_server.py); the kernel balances connections.
Metrics: the supervisor creates a private PROMETHEUS_MULTIPROC_DIR before starting any worker (they
inherit it), marks a dead worker's files with ``mark_process_dead`` and deletes the directory on exit;
directories of supervisors that were killed outright are swept at the next start.

Restarts: a dead worker is restarted after a backoff of 0.5 s doubling to 30 s; the backoff resets
once a worker has served for 60 s. Each restart counts in ``tokend_worker_restarts_total``.

Not handled: changing the number of workers at run time; restarting on settings change.

    Supervisor(Settings.load()).run()   # blocks; returns the exit code
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokend.server.logs import configure_logging, log_event
from tokend.server.metrics_endpoint import MetricsEndpoint, SupervisorCollector
from tokend.server.settings import Settings

__all__ = ["Supervisor", "EXIT_CONFIG_ERROR", "restart_delay"]

EXIT_CONFIG_ERROR = 2
BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # seconds a worker must live for its slot's backoff to reset
STOP_MARGIN = 5.0  # seconds past the grace period before a draining worker is killed
METRICS_DIR_PREFIX = "tokend-metrics-"

_log = logging.getLogger("tokend.server.supervisor")


def restart_delay(failures: int) -> float:
    """Seconds to wait before restarting after ``failures`` consecutive early deaths (≥ 1).

    >>> [restart_delay(n) for n in (1, 2, 3, 8, 100)]
    [0.5, 1.0, 2.0, 30.0, 30.0]
    """
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** min(failures - 1, 16))


@dataclass
class _Slot:
    """One worker position: the current process (if any) and its restart state."""

    index: int
    process: Any = None
    ready: Any = None
    started_at: float = 0.0
    failures: int = 0  # consecutive early deaths (for backoff)
    restart_at: float | None = None


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(settings.workers)]
        self._restarts = 0
        self._stopping = False
        self._all_ready_logged = False
        self._metrics_dir: Path | None = None
        self._endpoint: MetricsEndpoint | None = None
        self._playground: Any = None
        self._playground_restart_at: float | None = None
        self._playground_failures = 0

    # ---- public -------------------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, supervise until SIGTERM/SIGINT, drain; returns the process exit code."""
        configure_logging(self.settings.log_level)
        log_event(_log, "starting", settings=self.settings.as_log_fields())
        problem = self._check_ports() or self._check_models()
        if problem is not None:
            log_event(_log, "config_error", level=logging.ERROR, error=problem)
            return EXIT_CONFIG_ERROR
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _remove_stale_metric_dirs()
        self._metrics_dir = Path(tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-"))
        # Before any worker starts: spawned children inherit the environment of this moment.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self._metrics_dir)
        try:
            for slot in self._slots:
                self._start_worker(slot)
            if self.settings.metrics_port:
                self._start_metrics(self._metrics_dir)
            self._start_playground()
            self._supervise()
        except BaseException as exc:
            log_event(_log, "supervisor_failed", level=logging.ERROR, exc_info=exc, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            # Also on an unexpected error: never leave workers behind.
            self._drain()
            if self._endpoint is not None:
                self._endpoint.stop()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log_event(_log, "stopped", restarts=self._restarts)
        return 0

    def alive_workers(self) -> int:
        return sum(1 for slot in self._slots if slot.process is not None and slot.process.is_alive())

    def restarts(self) -> int:
        return self._restarts

    # ---- start-up -----------------------------------------------------------------------------
    def _check_ports(self) -> str | None:
        """Fail fast (exit 2) when a port is taken. Workers bind with SO_REUSEPORT, which would let a
        second `tokend serve` on the same port silently share its traffic; this probe binds without it."""
        ports = {"port": self.settings.port, "metrics_port": self.settings.metrics_port, "playground_port": self.settings.playground_port}
        for name, port in ports.items():
            if not port:
                continue
            family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
                try:
                    probe.bind((self.settings.host, port))
                except OSError as exc:
                    flag = "--" + name.replace("_", "-")
                    return f"setting {name} ({flag}): cannot listen on {self.settings.host}:{port}: {exc.strerror}; is another server running there?"
        return None

    def _check_models(self) -> str | None:
        """Fail fast (exit 2) when the registry cannot be opened or a configured model does not exist:
        workers restarting forever would hide a typo in --models."""
        from tokend.registry import Registry

        try:
            registry = Registry.open(self.settings.registry)
            for ref in self.settings.models or ():
                registry.resolve(ref)
        except Exception as exc:
            where = self.settings.registry or "the embedded default registry"
            return f"setting models/registry ({where}): {type(exc).__name__}: {exc}"
        return None

    def _start_worker(self, slot: _Slot) -> None:
        from tokend.server.worker import worker_main

        # Listen before loading only while nobody serves; a replacement loads first (see worker.py).
        listen_early = not any(
            other is not slot and other.process is not None and other.ready.is_set() for other in self._slots
        )
        slot.ready = self._context.Event()
        slot.process = self._context.Process(
            target=worker_main,
            args=(self.settings, slot.ready, slot.index, listen_early),
            name=f"tokend-worker-{slot.index}",
        )
        slot.process.start()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        log_event(_log, "worker_spawned", worker=slot.index, worker_pid=slot.process.pid)

    def _start_metrics(self, multiproc_dir: Path) -> None:
        self._endpoint = MetricsEndpoint(
            host=self.settings.host,
            port=self.settings.metrics_port,
            multiproc_dir=multiproc_dir,
            supervisor=SupervisorCollector(self.alive_workers, self.restarts),
        )
        port = self._endpoint.start()
        log_event(_log, "metrics_serving", port=port, multiproc_dir=str(multiproc_dir))

    def _start_playground(self) -> None:
        if not self.settings.playground_port:
            return
        import importlib.util

        if importlib.util.find_spec("tokend.playground") is None:
            log_event(_log, "playground_unavailable", level=logging.WARNING, reason="tokend.playground is not installed")
            return
        self._playground = self._context.Process(target=_playground_main, args=(self.settings,), name="tokend-playground")
        self._playground.start()
        log_event(_log, "playground_spawned", playground_pid=self._playground.pid, port=self.settings.playground_port)

    # ---- supervision --------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _supervise(self) -> None:
        while not self._stopping:
            sentinels = [slot.process.sentinel for slot in self._slots if slot.process is not None]
            if self._playground is not None:
                sentinels.append(self._playground.sentinel)
            multiprocessing.connection.wait(sentinels, timeout=0.2)
            if self._stopping:
                break
            now = time.monotonic()
            for slot in self._slots:
                self._check_slot(slot, now)
            self._check_playground(now)
            self._log_all_ready()

    def _check_slot(self, slot: _Slot, now: float) -> None:
        process = slot.process
        if process is not None:
            if process.is_alive():
                if now - slot.started_at >= HEALTHY_AFTER:
                    slot.failures = 0
                return
            process.join()
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid, str(self._metrics_dir))
            slot.failures += 1
            delay = restart_delay(slot.failures)
            log_event(
                _log,
                "worker_died",
                level=logging.WARNING,
                worker=slot.index,
                worker_pid=process.pid,
                exitcode=process.exitcode,
                restart_in=delay,
            )
            process.close()
            slot.process = None
            slot.restart_at = now + delay
            self._all_ready_logged = False
        if slot.restart_at is not None and now >= slot.restart_at:
            self._restarts += 1
            self._start_worker(slot)

    def _check_playground(self, now: float) -> None:
        process = self._playground
        if process is not None and not process.is_alive():
            process.join()
            self._playground_failures += 1
            delay = restart_delay(self._playground_failures)
            log_event(_log, "playground_died", level=logging.WARNING, exitcode=process.exitcode, restart_in=delay)
            self._playground = None
            self._playground_restart_at = now + delay
        if self._playground is None and self._playground_restart_at is not None and now >= self._playground_restart_at:
            self._playground_restart_at = None
            self._start_playground()

    def _log_all_ready(self) -> None:
        if self._all_ready_logged:
            return
        if all(slot.process is not None and slot.ready.is_set() for slot in self._slots):
            self._all_ready_logged = True
            log_event(
                _log,
                "serving",
                workers=len(self._slots),
                worker_pids=[slot.process.pid for slot in self._slots],
                port=self.settings.port,
            )

    # ---- shutdown -----------------------------------------------------------------------------
    def _drain(self) -> None:
        processes = [slot.process for slot in self._slots if slot.process is not None and slot.process.pid is not None]
        log_event(_log, "draining", grace_period=self.settings.grace_period, processes=len(processes))
        if self._playground is not None:
            processes.append(self._playground)
        for process in processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.grace_period + STOP_MARGIN
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log_event(_log, "kill_after_grace", level=logging.WARNING, child_pid=process.pid)
                process.kill()
                process.join()


def _remove_stale_metric_dirs() -> None:
    """Delete metric directories left by supervisors that were killed (SIGKILL, OOM) before cleaning up.

    A directory is ``<tmp>/tokend-metrics-<supervisor pid>-<random>``; it is stale when that pid no
    longer runs. (A reused pid only means a stale directory survives until the next start.)
    """
    for path in Path(tempfile.gettempdir()).glob(f"{METRICS_DIR_PREFIX}*-*"):
        pid_text = path.name[len(METRICS_DIR_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or not path.is_dir() or path.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:  # alive, another user's
            pass


def _playground_main(settings: Settings) -> None:
    """Process entry point of the playground child (tokend.playground.serve_playground, blocking)."""
    configure_logging(settings.log_level)
    from tokend.playground import serve_playground

    serve_playground(settings)
