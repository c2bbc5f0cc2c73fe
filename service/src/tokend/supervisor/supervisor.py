"""The supervisor: the parent process of `tokend serve`. It starts N workers and the playground, replaces
dead ones (one slot and backoff code for both), serves /metrics for all of them, and on SIGTERM/SIGINT
drains everything.

Children are spawned, not forked (``multiprocessing`` *spawn*): each is a fresh interpreter that imports
its own code (``roles.py`` names the entry points; the supervisor imports none of them, and never grpc).
Fork was rejected because the supervisor is multi-threaded by the time it *re*starts a child (the metrics
HTTP server thread), and forking a threaded process can copy a lock held by another thread into the child,
which then hangs; gRPC's C core also has threads and is only fork-safe with GRPC_ENABLE_FORK_SUPPORT and
strict rules. Spawn costs an interpreter start per child (≈0.5 s, once) and no memory sharing — which fork
would not give here anyway: each worker loads its models after start, and CPython's reference counting
would unshare copy-on-write pages. Every child watches its parent and drains when the supervisor is gone
(``children.py``), so a SIGKILLed supervisor leaves no worker or playground holding a port.

Workers share the port with SO_REUSEPORT (``tokend.server.grpc_server``); the kernel balances
connections. Metrics: the supervisor creates a private PROMETHEUS_MULTIPROC_DIR before starting any child
(they inherit it), marks a dead child's files with ``mark_process_dead`` and deletes the directory on
exit; directories of supervisors that were killed outright are swept at the next start. Each worker
restart counts in ``tokend_worker_restarts_total``.

Not handled: changing the number of workers at run time; restarting on settings change.

    Supervisor(Settings.load()).run()   # blocks; returns the exit code
"""

from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokend.logs import configure_logging, log_event
from tokend.settings import Settings, flag_name
from tokend.supervisor.children import run_child
from tokend.supervisor.metrics_endpoint import MetricsEndpoint, SupervisorCollector
from tokend.supervisor.roles import ROLES, WORKER, Role
from tokend.supervisor.slots import Slot

__all__ = ["Supervisor", "EXIT_CONFIG_ERROR"]

EXIT_CONFIG_ERROR = 2
STOP_MARGIN = 5.0  # seconds past the grace period before a draining child is killed
METRICS_DIR_PREFIX = "tokend-metrics-"

_log = logging.getLogger("tokend.supervisor")


class Supervisor:
    def __init__(self, settings: Settings, roles: Sequence[Role] = ROLES) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")
        self._slots = [Slot(role, index) for role in roles for index in range(role.count(settings))]
        self._stopping = False
        self._all_ready_logged = False
        self._metrics_dir: Path | None = None
        self._endpoint: MetricsEndpoint | None = None

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
        # Before any child starts: spawned children inherit the environment of this moment.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self._metrics_dir)
        try:
            self._slots = [slot for slot in self._slots if self._installed(slot.role)]
            for slot in self._slots:
                self._start(slot)
            if self.settings.metrics_port:
                self._start_metrics(self._metrics_dir)
            self._supervise()
        except BaseException as exc:
            log_event(_log, "supervisor_failed", level=logging.ERROR, exc_info=exc, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            # Also on an unexpected error: never leave children behind.
            self._drain()
            if self._endpoint is not None:
                self._endpoint.stop()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log_event(_log, "stopped", restarts=self.restarts())
        return 0

    def alive_workers(self) -> int:
        return sum(1 for slot in self._slots if slot.role is WORKER and slot.alive)

    def restarts(self) -> int:
        return sum(slot.restarts for slot in self._slots if slot.role is WORKER)

    # ---- start-up -----------------------------------------------------------------------------
    def _check_ports(self) -> str | None:
        """Fail fast (exit 2) when a port is taken. Workers bind with SO_REUSEPORT, which would let a
        second `tokend serve` on the same port silently share its traffic; this probe binds without it."""
        settings = self.settings
        ports = {
            "port": (settings.host, settings.port),
            "metrics_port": (settings.host, settings.metrics_port),
            "playground_port": (settings.playground_host, settings.playground_port),
        }
        for name, (host, port) in ports.items():
            if not port:
                continue
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers
                try:
                    probe.bind((host, port))
                except OSError as exc:
                    return f"setting {name} ({flag_name(name)}): cannot listen on {host}:{port}: {exc.strerror}; is another server running there?"
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

    def _installed(self, role: Role) -> bool:
        if importlib.util.find_spec(role.package) is not None:
            return True
        log_event(_log, f"{role.name}_unavailable", level=logging.WARNING, reason=f"{role.package} is not installed")
        return False

    def _start(self, slot: Slot) -> None:
        # A replacement worker loads before it listens while its peers serve (see tokend.server.worker).
        peers_ready = any(other is not slot and other.role is slot.role and other.serving for other in self._slots)
        slot.ready = self._context.Event()
        slot.process = self._context.Process(
            target=run_child,
            args=(slot.role.entry, self.settings, slot.ready, slot.index, peers_ready, slot.role.name),
            name=f"tokend-{slot.role.name}-{slot.index}",
        )
        slot.process.start()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        name = slot.role.name
        log_event(_log, f"{name}_spawned", **{name: slot.index, f"{name}_pid": slot.process.pid})

    def _start_metrics(self, multiproc_dir: Path) -> None:
        self._endpoint = MetricsEndpoint(
            host=self.settings.host,
            port=self.settings.metrics_port,
            multiproc_dir=multiproc_dir,
            supervisor=SupervisorCollector(self.alive_workers, self.restarts),
        )
        port = self._endpoint.start()
        log_event(_log, "metrics_serving", port=port, multiproc_dir=str(multiproc_dir))

    # ---- supervision --------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _supervise(self) -> None:
        while not self._stopping:
            sentinels = [slot.process.sentinel for slot in self._slots if slot.process is not None]
            multiprocessing.connection.wait(sentinels, timeout=0.2)
            if self._stopping:
                break
            now = time.monotonic()
            for slot in self._slots:
                self._check(slot, now)
            self._log_all_ready()

    def _check(self, slot: Slot, now: float) -> None:
        process = slot.process
        if process is not None:
            if process.is_alive():
                slot.check_healthy(now)
                return
            process.join()
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(process.pid, str(self._metrics_dir))
            delay = slot.died(now)
            name = slot.role.name
            log_event(
                _log, f"{name}_died", level=logging.WARNING, **{name: slot.index, f"{name}_pid": process.pid},
                exitcode=process.exitcode, restart_in=delay,
            )  # fmt: skip
            process.close()
            if slot.role is WORKER:
                self._all_ready_logged = False
        if slot.restart_at is not None and now >= slot.restart_at:
            slot.restarts += 1
            self._start(slot)

    def _log_all_ready(self) -> None:
        if self._all_ready_logged:
            return
        workers = [slot for slot in self._slots if slot.role is WORKER]
        if all(slot.serving for slot in workers):
            self._all_ready_logged = True
            log_event(
                _log, "serving", workers=len(workers), worker_pids=[slot.process.pid for slot in workers],
                port=self.settings.port,
            )  # fmt: skip

    # ---- shutdown -----------------------------------------------------------------------------
    def _drain(self) -> None:
        processes = [slot.process for slot in self._slots if slot.process is not None and slot.process.pid is not None]
        log_event(_log, "draining", grace_period=self.settings.grace_period, processes=len(processes))
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
