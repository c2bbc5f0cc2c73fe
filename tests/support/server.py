"""Start a real `tokend serve` as a subprocess on free loopback ports, for integration tests.

    from support.server import start_server      # tests/ is on sys.path (tests/conftest.py)

    with start_server(registry=str(registry_dir), workers=2) as server:
        stub = server.stub()                         # tokend.v1 TokenizerStub on server.target
        stub.Encode(request, timeout=10)
        metrics_text = server.scrape_metrics()       # GET server.metrics_url
    # stopped (SIGTERM, then SIGKILL of the whole process group) and cleaned up here

Or, for a module-scoped fixture: ``server = TokendServer(...).start()`` … ``server.stop()``.

What it does: picks free ports (gRPC and metrics; the playground is off unless ``playground=True``),
runs ``python -m tokend.server`` (= ``tokend serve``) in its own process group with the current
interpreter, sends stderr (JSON log lines) to a file, and waits until the service answers a
grpc.health.v1 check with SERVING and — with several workers — until the supervisor logs that every
worker is serving. A start that fails or times out raises ServerStartError with the server's stderr.

The environment is the test process's minus every ``TOKEND_*`` variable (so a developer's shell
cannot change a test), plus ``env``. Extra ``args`` are appended as command-line flags and win over
the helper's defaults. Not handled: servers on other hosts, Windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["TokendServer", "ServerStartError", "start_server", "free_port", "DEFAULT_START_TIMEOUT"]

DEFAULT_START_TIMEOUT = 90.0
SERVER_MODULE = "tokend.server"


class ServerStartError(RuntimeError):
    """The server did not become SERVING; the message carries its exit code and stderr."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TokendServer:
    """One `tokend serve` subprocess. Attributes: ``target`` ("127.0.0.1:PORT"), ``port``,
    ``metrics_port`` (0 = off), ``metrics_url``, ``playground_port``, ``process`` (subprocess.Popen),
    ``log_path`` (its stderr, in a temporary directory removed by ``stop``)."""

    def __init__(
        self,
        *args: str,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        registry: str | os.PathLike[str] | None = None,
        models: Sequence[str] | None = None,
        metrics: bool = True,
        playground: bool = False,
        reload_interval: float | None = 0,
        grace_period: float | None = 10,
        drain_flush: float | None = 0.1,
        log_level: str = "info",
        start_timeout: float = DEFAULT_START_TIMEOUT,
        wait_until_serving: bool = True,
        channel_credentials: Any = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.metrics_port = free_port() if metrics else 0
        self.playground_port = free_port() if playground else 0
        self.target = f"{self.host}:{self.port}"
        self.metrics_url = f"http://{self.host}:{self.metrics_port}/metrics" if metrics else None
        self.workers = workers
        self.start_timeout = start_timeout
        self.wait_until_serving = wait_until_serving
        self.channel_credentials = channel_credentials
        self._log_dir = Path(tempfile.mkdtemp(prefix="tokend-test-server-"))
        self.log_path = self._log_dir / "stderr.log"
        flags: list[str] = [
            "--host", self.host,
            "--port", str(self.port),
            "--metrics-port", str(self.metrics_port),
            "--playground-port", str(self.playground_port),
            "--workers", str(workers),
            "--log-level", log_level,
        ]  # fmt: skip
        if registry is not None:
            flags += ["--registry", str(registry)]
        if models:
            flags += ["--models", ",".join(models)]
        if reload_interval is not None:
            flags += ["--reload-interval", str(reload_interval)]
        if grace_period is not None:
            flags += ["--grace-period", str(grace_period)]
        # Short by default: a test has its answers before it stops the server, and each stop would wait the
        # server's 2 s for nothing. Tests of draining under load pass None (the server's default).
        if drain_flush is not None:
            flags += ["--drain-flush", str(drain_flush)]
        self.command = [*(command or (sys.executable, "-m", SERVER_MODULE)), *flags, *args]
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("TOKEND_")}
        self.env["PYTHONUNBUFFERED"] = "1"
        self.env.update(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._channels: list[Any] = []
        self._final_log: str | None = None

    # ---- life cycle -----------------------------------------------------------------------------
    def start(self) -> TokendServer:
        """Start the subprocess and (by default) wait until it is SERVING; returns self."""
        self._log_file = open(self.log_path, "ab")  # O_APPEND: lines from several processes never overwrite
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=self._log_file,
            env=self.env,
            start_new_session=True,  # its own process group: cleanup reaches every worker
        )
        if self.wait_until_serving:
            try:
                self.wait_serving(self.start_timeout)
            except BaseException:
                self.stop(signal.SIGKILL)
                raise
        return self

    def wait_serving(self, timeout: float = DEFAULT_START_TIMEOUT) -> None:
        """Block until health SERVING (and, with several workers, every worker serving)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process is None or self.process.poll() is not None:
                raise ServerStartError(self._failure("exited before it was serving"))
            if self._health_serving() and (self.workers == 1 or self.all_workers_serving()):
                return
            if time.monotonic() > deadline:
                raise ServerStartError(self._failure(f"not SERVING after {timeout:.0f} s"))
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` to the supervisor, wait up to ``timeout`` s, then SIGKILL the process group.
        Returns the supervisor's exit code (negative = killed by that signal). Safe to call twice."""
        for channel in self._channels:
            channel.close()
        self._channels.clear()
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Whatever happened to the supervisor, nothing of the group may survive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        code = process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            # Keep the text for assertions after stop; the temporary directory goes.
            self._final_log = self.log_path.read_text(errors="replace")
            shutil.rmtree(self._log_dir, ignore_errors=True)
        return code

    def __enter__(self) -> TokendServer:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- talking to it ----------------------------------------------------------------------------
    def channel(self, **options: Any) -> Any:
        """A new gRPC channel to ``target`` (closed by ``stop``); ``options`` become channel options."""
        import grpc

        option_list = list(options.items())
        if self.channel_credentials is not None:
            channel = grpc.secure_channel(self.target, self.channel_credentials, options=option_list)
        else:
            channel = grpc.insecure_channel(self.target, options=option_list)
        self._channels.append(channel)
        return channel

    def stub(self, channel: Any = None) -> Any:
        """A ``tokend.v1.Tokenizer`` stub (on a new channel unless one is given)."""
        from tokend_api.v1 import tokenizer_pb2_grpc

        return tokenizer_pb2_grpc.TokenizerStub(channel or self.channel())

    def health_status(self, service: str = "", timeout: float = 5.0) -> str:
        """The grpc.health.v1 status name ("SERVING", "NOT_SERVING", …) on a fresh connection."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        channel = (
            grpc.secure_channel(self.target, self.channel_credentials)
            if self.channel_credentials is not None
            else grpc.insecure_channel(self.target)
        )
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        finally:
            channel.close()

    def scrape_metrics(self, timeout: float = 10.0) -> str:
        """The text of ``GET /metrics`` (Prometheus exposition format)."""
        if self.metrics_url is None:
            raise RuntimeError("this server was started with metrics=False")
        with urllib.request.urlopen(self.metrics_url, timeout=timeout) as response:
            return response.read().decode("utf-8")

    # ---- its logs -------------------------------------------------------------------------------
    def stderr_text(self) -> str:
        """Everything the server wrote to stderr/stdout so far (kept after ``stop``)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def logs(self) -> list[dict[str, Any]]:
        """The JSON log lines so far, parsed (lines that are not JSON are skipped)."""
        entries = []
        for line in self.stderr_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict):
                    entries.append(entry)
        return entries

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log entries whose ``event`` is ``name``."""
        return [entry for entry in self.logs() if entry.get("event") == name]

    def worker_pids(self) -> list[int]:
        """Pids of the workers alive according to the supervisor's log (spawned and not died)."""
        spawned = [entry["worker_pid"] for entry in self.events("worker_spawned")]
        died = {entry["worker_pid"] for entry in self.events("worker_died")}
        return [pid for pid in spawned if pid not in died]

    def all_workers_serving(self) -> bool:
        """True once the supervisor has logged that all workers are serving (since the last death)."""
        last_serving = last_death = -1
        for position, entry in enumerate(self.logs()):
            if entry.get("event") == "serving":
                last_serving = position
            elif entry.get("event") == "worker_died":
                last_death = position
        return last_serving > last_death

    def replaced(self, pid: int) -> bool:
        """True once the supervisor has logged worker `pid`'s death and, after it, all workers serving. One read
        of the log: `all_workers_serving() and pid not in worker_pids()` read it twice, and a death logged
        between the two reads passed for a restart (the call after it met a refused connection)."""
        logs = self.logs()
        deaths = [i for i, entry in enumerate(logs) if entry.get("event") == "worker_died"]
        if not any(logs[i].get("worker_pid") == pid for i in deaths):
            return False
        return any(entry.get("event") == "serving" for entry in logs[deaths[-1] + 1:])

    def _health_serving(self) -> bool:
        try:
            return self.health_status(timeout=2.0) == "SERVING"
        except Exception:  # not listening yet
            return False

    def _failure(self, what: str) -> str:
        code = self.process.poll() if self.process is not None else None
        return (
            f"tokend serve ({' '.join(self.command)}) {what}; exit code {code}.\n"
            f"--- server stderr ---\n{self.stderr_text()[-20000:]}"
        )


@contextlib.contextmanager
def start_server(*args: str, **kwargs: Any) -> Iterator[TokendServer]:
    """``with start_server(...) as server:`` — TokendServer(*args, **kwargs), started and always stopped."""
    server = TokendServer(*args, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()
