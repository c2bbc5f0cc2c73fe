"""The server's life: health before and after loading, draining on SIGTERM, replacing a killed worker,
serving a version published while it runs, reflection, and refusing bad settings at start."""

from __future__ import annotations

import functools
import http.server
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.registries import build_registry, publish_openai
from support.server import TokendServer, start_server
from support.waiting import wait_for
from tokend_api.v1 import tokenizer_pb2 as pb

from .conftest import rpc_error



class _GatedHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a registry directory; payload downloads wait until the test opens the gate."""

    gate: threading.Event

    def do_GET(self) -> None:
        if ".tiktoken" in self.path:
            self.gate.wait(30)
        super().do_GET()

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass


def test_health_not_serving_until_models_loaded(tmp_path):
    root = build_registry(tmp_path / "models", ["cl100k_base"])
    gate = threading.Event()
    handler = type("Handler", (_GatedHandler,), {"gate": gate})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    server = TokendServer(registry=url, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}, wait_until_serving=False)
    try:
        server.start()
        wait_for(lambda: server.events("worker_started"), 60, "the worker to listen")
        assert server.health_status() == "NOT_SERVING"
        assert server.health_status("tokend.v1.Tokenizer") == "NOT_SERVING"
        error = rpc_error(server.stub().Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="x")]), timeout=5)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "loading" in error.details()
        assert "tokend_ready 0.0" in server.scrape_metrics()
        gate.set()
        server.wait_serving(60)
        assert server.health_status() == "SERVING"
        assert server.health_status("tokend.v1.Tokenizer") == "SERVING"
        assert "tokend_ready 1.0" in server.scrape_metrics()
        response = server.stub().Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=5)
        assert list(response.results[0].ids) == [15339, 1917]
    finally:
        gate.set()
        server.stop()
        httpd.shutdown()
        httpd.server_close()


def test_sigterm_lets_calls_in_flight_finish_and_refuses_new_ones(registry_dir):
    import random
    import string

    # The call in flight is a ChunkStream whose client reads its answer (~8 MB) only once released: gRPC holds
    # its handler in the send once the transport's windows are full, so it is in flight until the client reads,
    # however fast the machine (a big CountTokens, used before, could finish between two metric scrapes; a
    # DecodeStream held open, used next, now ends as the drain begins: tests/server/test_stream_drain.py).
    rng = random.Random(91)
    document = " ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(500_000))
    with start_server(registry=registry_dir, grace_period=60, drain_flush=None) as server:
        channel = server.channel()
        stub = server.stub(channel)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=120)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        chunks = stub.ChunkStream(
            pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=40), timeout=120
        )
        wait_for(
            lambda: 'tokend_rpc_in_flight{grpc_method="ChunkStream"} 1.0' in server.scrape_metrics(),
            30,
            "the call to be in flight",
        )
        server.process.send_signal(signal.SIGTERM)
        # Health turns NOT_SERVING at once for watchers (load balancers stop sending).
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        # New calls are refused cleanly (UNAVAILABLE), whether on a new connection or the open one.
        fresh = grpc.insecure_channel(server.target)
        try:
            error = rpc_error(
                server.stub(fresh).Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="x")]), timeout=5
            )
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            fresh.close()
        assert server.process.poll() is None, "the server ended with a call in flight"
        ends = [chunk.end for message in chunks for chunk in message.chunks]
        assert ends[-1] == len(document) and ends == sorted(ends)
        assert server.process.wait(timeout=90) == 0
        assert server.events("worker_draining") and server.events("stopped")
        assert server.events("worker_stopped")[0]["calls_cut"] == 0


def test_a_draining_worker_keeps_its_connections_for_the_drain_flush(registry_dir):
    # --drain-flush: the connections stay up that long after the last call returned (answers leave), then
    # the worker ends; an idle server with a 4 s flush is still running 2 s after SIGTERM and then exits 0.
    with start_server(registry=registry_dir, grace_period=60, drain_flush=4, metrics=False) as server:
        server.process.send_signal(signal.SIGTERM)
        time.sleep(2)
        assert server.process.poll() is None, "the worker ended before its drain flush"
        assert server.process.wait(timeout=60) == 0
        assert server.events("worker_stopped")


def test_killed_worker_is_replaced_and_service_keeps_answering(registry_dir):
    with start_server(registry=registry_dir, workers=2) as server:
        before = server.worker_pids()
        assert len(before) == 2
        metrics = server.scrape_metrics()
        assert "tokend_workers 2.0" in metrics and "tokend_worker_restarts_total 0.0" in metrics
        victim = before[0]
        import os

        os.kill(victim, signal.SIGKILL)
        # While one worker is gone, the other keeps answering (new connections reach live listeners).
        for _ in range(10):
            channel = grpc.insecure_channel(server.target)
            try:
                response = server.stub(channel).Encode(
                    pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=10, wait_for_ready=True
                )
                assert list(response.results[0].ids) == [15339, 1917]
            finally:
                channel.close()
        wait_for(lambda: server.events("worker_died"), 30, "the supervisor to notice the death")
        assert server.events("worker_died")[0]["worker_pid"] == victim
        wait_for(server.all_workers_serving, 60, "the replacement worker to serve")
        after = server.worker_pids()
        assert len(after) == 2 and victim not in after and before[1] in after
        metrics = server.scrape_metrics()
        assert "tokend_workers 2.0" in metrics and "tokend_worker_restarts_total 1.0" in metrics
        assert "tokend_ready 1.0" in metrics
        (metrics_serving,) = server.events("metrics_serving")
    from pathlib import Path

    assert not Path(metrics_serving["multiproc_dir"]).exists()  # the supervisor removed its metric files


def test_version_published_while_running_is_served_without_restart(tmp_path):
    from tokend.registry import Registry

    root = build_registry(tmp_path / "models", [])
    registry = Registry.open(root)
    publish_openai(registry, "cl100k_base", as_name="reloadable")
    registry.set_alias("reloadable", "stable", 1)
    with start_server(registry=root, reload_interval=0.3) as server:
        stub = server.stub()
        first = stub.GetModel(pb.GetModelRequest(model="reloadable"), timeout=5).details
        assert first.model.version == 1 and "<|new|>" not in first.special_tokens
        pids = server.worker_pids()
        specials = {"<|endoftext|>": 100257, "<|new|>": 100300}
        publish_openai(registry, "cl100k_base", as_name="reloadable", special_tokens=specials)
        wait_for(
            lambda: stub.GetModel(pb.GetModelRequest(model="reloadable"), timeout=5).details.model.version == 2,
            30,
            "version 2 to be served",
        )
        policy = pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_ALL))
        response = stub.Encode(
            pb.EncodeRequest(model="reloadable", inputs=[pb.Input(text="a<|new|>")], special_tokens=policy), timeout=5
        )
        assert response.model.version == 2
        assert list(response.results[0].ids) == [64, 100300]  # "a" = 64 in cl100k_base (tiktoken)
        old = stub.Encode(pb.EncodeRequest(model="reloadable@1", inputs=[pb.Input(text="a<|new|>")], special_tokens=policy), timeout=5)
        assert old.model.version == 1 and list(old.results[0].ids) == [64, 27, 91, 943, 91, 29]
        # An alias moved while running is followed too.
        assert stub.GetModel(pb.GetModelRequest(model="reloadable@stable"), timeout=5).details.model.version == 1
        registry.set_alias("reloadable", "stable", 2)
        wait_for(
            lambda: stub.GetModel(pb.GetModelRequest(model="reloadable@stable"), timeout=5).details.model.version == 2,
            30,
            "the alias move to be served",
        )
        assert server.worker_pids() == pids and not server.events("worker_died"), server.stderr_text()
        assert server.events("registry_refreshed"), server.stderr_text()


def test_reflection_lists_the_service(shared_server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    database = ProtoReflectionDescriptorDatabase(shared_server.channel())
    services = set(database.get_services())
    assert {"tokend.v1.Tokenizer", "grpc.health.v1.Health"} <= services
    descriptor = database.FindFileContainingSymbol("tokend.v1.Tokenizer")
    assert descriptor.package == "tokend.v1"


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on TCP ``port`` (IPv4, from /proc/net/tcp)."""
    addresses = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
            addresses.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


def test_the_bare_binary_denies_by_default(registry_dir):
    """No reflection and a playground for this machine only unless told (the gRPC port listens everywhere,
    as a server must); `make serve` passes --reflection for a developer's grpcurl."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    server = TokendServer(registry=registry_dir, models=["cl100k_base"], metrics=False, playground=True)
    server.command[server.command.index("--host") + 1] = "0.0.0.0"  # the default of --host
    with server:
        database = ProtoReflectionDescriptorDatabase(server.channel())
        with pytest.raises(grpc.RpcError) as info:
            database.get_services()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert server.stub().CountTokens(
            pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=5
        ).total == 2
        wait_for(lambda: _get_or_none(f"http://127.0.0.1:{server.playground_port}/healthz"), 60, "the playground")
        assert _listening_addresses(server.playground_port) == {"127.0.0.1"}  # not 0.0.0.0, like --host
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    assert "tokend serve --reflection" in makefile


@pytest.mark.parametrize(
    "flags,env,named",
    [
        (["--workers", "0"], {}, "--workers / TOKEND_WORKERS"),
        ([], {"TOKEND_MAX_BATCH_ITEMS": "many"}, "--max-batch-items / TOKEND_MAX_BATCH_ITEMS"),
        (["--tls-cert", "/nonexistent.pem"], {}, "--tls-cert / TOKEND_TLS_CERT"),
        (["--models", "gpt-9"], {}, "gpt-9"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(registry_dir, flags, env, named):
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")} | env
    result = subprocess.run(
        [sys.executable, "-m", "tokend.server", "--registry", str(registry_dir), "--port", "0", "--workers", "1",
         "--metrics-port", "0", "--playground-port", "0", *flags],
        capture_output=True, text=True, timeout=60, env=environment,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert named in result.stderr


def test_tokend_serve_command_runs_the_service_and_the_playground(registry_dir):
    tokend = Path(sys.executable).parent / "tokend"  # the console script of the installed distribution
    server = TokendServer(registry=registry_dir, models=["cl100k_base"], playground=True, command=[str(tokend), "serve"])
    with server:
        assert server.stub().CountTokens(
            pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=5
        ).total == 2
        url = f"http://127.0.0.1:{server.playground_port}/"
        page = wait_for(lambda: _get_or_none(url), 60, "the playground page")
        assert page.status == 200
    assert server.process.returncode == 0
    assert _get_or_none(url) is None  # the playground stopped with the service


def _get_or_none(url: str):
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            response.read()
            return response
    except OSError:
        return None


def test_a_broken_version_is_refused_precisely_while_others_serve(tmp_path):
    from tokend.registry import Registry

    root = build_registry(tmp_path / "models", [])
    registry = Registry.open(root)
    publish_openai(registry, "cl100k_base", as_name="fragile")
    manifest = publish_openai(registry, "cl100k_base", as_name="fragile", special_tokens={"<|endoftext|>": 100257})
    payload = root / "fragile" / "2" / manifest.payload.path
    payload.write_bytes(b"not the published bytes")
    with start_server(registry=root, models=["fragile@1"]) as server:
        stub = server.stub()
        error = rpc_error(stub.Encode, pb.EncodeRequest(model="fragile@2", inputs=[pb.Input(text="x")]), timeout=10)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "fragile@2" in error.details() and "SHA-256" in error.details()
        response = stub.Encode(pb.EncodeRequest(model="fragile@1", inputs=[pb.Input(text="hello world")]), timeout=10)
        assert list(response.results[0].ids) == [15339, 1917]
        assert 'tokend_model_load_failures_total{model="fragile",version="2"} 1.0' in server.scrape_metrics()
        assert not server.events("rpc_internal_error") and not server.events("worker_died")


def test_workers_exit_when_the_supervisor_is_killed_and_its_files_are_swept_later(registry_dir, tmp_path):
    import os
    from pathlib import Path

    # A private temporary directory: any other tokend starting on this machine meanwhile would sweep the
    # dead supervisor's directory from the shared one before this test looks for it.
    private_tmp = {"TMPDIR": str(tmp_path)}
    with start_server(registry=registry_dir, models=["cl100k_base"], workers=2, env=private_tmp) as server:
        (metrics_serving,) = server.events("metrics_serving")
        left_behind = Path(metrics_serving["multiproc_dir"])
        workers = server.worker_pids()
        server.process.kill()  # SIGKILL: the supervisor cannot forward anything
        server.process.wait(10)

        def gone(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            # An exited child of a dead parent is reaped by init; until then it may be a zombie.
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    return stat.read().split(")")[-1].split()[0] == "Z"
            except FileNotFoundError:
                return True

        wait_for(lambda: all(gone(pid) for pid in workers), 30, "the orphaned workers to exit")
        assert len(server.events("supervisor_gone")) == 2
    assert left_behind.is_dir()  # a SIGKILLed supervisor cannot clean up...
    assert left_behind.parent == tmp_path
    with start_server(registry=registry_dir, models=["cl100k_base"], metrics=False, env=private_tmp):
        assert not left_behind.exists()  # ...the next one sweeps its directory


def test_a_port_in_use_is_refused_at_start(registry_dir):
    """SO_REUSEPORT would let two servers share a port silently; the supervisor checks first."""
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKEND_")}
        result = subprocess.run(
            [sys.executable, "-m", "tokend.server", "--registry", str(registry_dir), "--host", "127.0.0.1",
             "--port", str(port), "--metrics-port", "0", "--playground-port", "0", "--workers", "2"],
            capture_output=True, text=True, timeout=60, env=environment,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"setting port (--port): cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "worker_spawned" not in result.stderr


def test_the_supervisor_never_imports_grpc():
    """Workers are spawned, so this is about hygiene, not safety: the parent holds no gRPC state at all."""
    code = (
        "import sys; import tokend.cli.serve, tokend.supervisor.supervisor, tokend.registry; "
        "from tokend.supervisor import Supervisor; "
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_playground_dies_with_a_killed_supervisor_and_frees_its_port(registry_dir):
    """Every child watches its parent: a SIGKILLed supervisor leaves no playground holding the port."""
    import os
    import socket

    server = TokendServer(registry=registry_dir, models=["cl100k_base"], playground=True, metrics=False)
    with server:
        url = f"http://127.0.0.1:{server.playground_port}/healthz"
        wait_for(lambda: _get_or_none(url), 60, "the playground to answer")
        (spawned,) = server.events("playground_spawned")
        server.process.kill()  # SIGKILL: nothing can be forwarded to the children
        server.process.wait(10)
        wait_for(lambda: _get_or_none(url) is None, 30, "the orphaned playground to stop")
        wait_for(lambda: any(e.get("role") == "playground" for e in server.events("supervisor_gone")), 30, "its log line")

        def exited() -> bool:
            try:
                os.kill(spawned["playground_pid"], 0)
            except ProcessLookupError:
                return True
            with open(f"/proc/{spawned['playground_pid']}/stat") as stat:  # a zombie until init reaps it
                return stat.read().split(")")[-1].split()[0] == "Z"

        wait_for(exited, 30, "the playground process to exit")
        with socket.socket() as probe:  # the port is free for the next server
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", server.playground_port))
