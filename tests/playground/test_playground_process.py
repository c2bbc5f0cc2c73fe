"""The playground as a process of its own: `python -m tokend.playground` and `serve_playground(settings)` (what
`tokend serve` runs in a child process) serve the real registry on a loopback port, pick up newly published
versions (hot reload) and stop cleanly on SIGTERM; `tokend serve` (python -m tokend.server) runs it beside
the gRPC workers."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tokend.engine import GPT4_PATTERN, MinbpeModel, dump_minbpe_model, train
from tokend.registry import Registry

from .json_client import JsonClient
from .playground_process import running_playground


def test_module_entry_point_serves_and_stops_on_sigterm(oracle):
    argv = ["-m", "tokend.playground", "--host", "127.0.0.1", "--port", "0", "--reload-interval", "0"]
    with running_playground(argv) as playground:
        client = JsonClient(playground.url)
        names = {model["name"] for model in client.get("/api/v1/models").json()["models"]}
        assert {"cl100k_base", "o200k_base"} <= names
        reply = client.post("/api/v1/encode", {"model": "o200k_base", "text": "served by a process"})
        assert reply.json()["results"][0]["ids"] == oracle["o200k_base"].encode("served by a process")
        assert playground.terminate() == 0


def test_serve_playground_takes_the_servers_settings(oracle):
    script = textwrap.dedent(
        """
        import logging
        from tokend.playground import serve_playground
        from tokend.settings import Settings

        logging.basicConfig(level=logging.INFO)
        settings = Settings.load(
            flags={"playground_host": "127.0.0.1", "playground_port": 0, "workers": 1, "max_batch_items": 2},
            environ={},
        )
        serve_playground(settings)
        """
    )
    with running_playground(["-c", script]) as playground:
        client = JsonClient(playground.url)
        reply = client.post("/api/v1/count", {"model": "cl100k_base", "inputs": ["a", "b", "c"]})
        assert reply.status == 413  # max_batch_items from the settings reached the playground
        assert reply.error["limit"] == 2
        ok = client.post("/api/v1/count", {"model": "cl100k_base", "inputs": ["token", "playground"]})
        assert ok.json()["counts"] == [len(oracle["cl100k_base"].encode(t)) for t in ("token", "playground")]
        assert playground.terminate() == 0


def _publish_tiny_model(registry: Registry, training_text: str) -> int:
    """A 260-token model trained on `training_text`, published as the next version of "tiny"."""
    result = train([training_text], 260, name="tiny")
    payload = dump_minbpe_model(MinbpeModel(pattern=GPT4_PATTERN, special_tokens={}, merges=result.merges))
    manifest = registry.publish(
        "tiny", payload=payload.encode(), payload_format="minbpe_model",
        provenance={"kind": "trained", "settings": {"vocab_size": 260}},
    )
    return manifest.version


def test_new_versions_appear_without_a_restart(tmp_path):
    location = tmp_path / "registry"
    registry = Registry.open(location, create=True)
    assert _publish_tiny_model(registry, "aaab " * 50) == 1
    argv = ["-m", "tokend.playground", "--port", "0", "--registry", str(location), "--reload-interval", "0.2"]
    with running_playground(argv) as playground:
        client = JsonClient(playground.url)
        assert client.get("/api/v1/models").json()["models"][0]["versions"] == [1]
        assert client.post("/api/v1/count", {"model": "tiny@2", "text": "ab"}).status == 404

        assert _publish_tiny_model(registry, "xyzw " * 50) == 2
        deadline = time.monotonic() + 30  # generous: the poll interval is 0.2 s
        while client.get("/api/v1/models").json()["models"][0]["versions"] != [1, 2]:
            assert time.monotonic() < deadline, "version 2 never appeared"
            time.sleep(0.1)
        reply = client.post("/api/v1/encode", {"model": "tiny", "text": "xyzw"})
        assert reply.json()["model"] == {"name": "tiny", "version": 2}
        assert reply.json()["results"][0]["ids"] == registry.get_encoding("tiny@2").encode("xyzw")
        assert playground.terminate() == 0


def test_a_version_published_a_moment_ago_answers_at_once_when_pinned(tmp_path):
    """The playground resolves models itself: a reference its catalog does not list re-reads the catalog (with
    hot reload on), so `tiny@2` answers right after its publish, not at the next refresh (an hour away here).
    Before: 404 until then."""
    location = tmp_path / "registry"
    registry = Registry.open(location, create=True)
    assert _publish_tiny_model(registry, "aaab " * 50) == 1
    argv = ["-m", "tokend.playground", "--port", "0", "--registry", str(location), "--reload-interval", "3600"]
    with running_playground(argv) as playground:
        client = JsonClient(playground.url)
        assert client.post("/api/v1/count", {"model": "tiny@1", "text": "ab"}).status == 200
        assert _publish_tiny_model(registry, "xyzw " * 50) == 2
        reply = client.post("/api/v1/encode", {"model": "tiny@2", "text": "xyzw"})
        assert reply.status == 200 and reply.json()["model"] == {"name": "tiny", "version": 2}
        assert reply.json()["results"][0]["ids"] == registry.get_encoding("tiny@2").encode("xyzw")
        assert client.post("/api/v1/count", {"model": "tiny@3", "text": "ab"}).status == 404
        assert playground.terminate() == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_tokend_serve_runs_the_playground_beside_the_grpc_workers(tmp_path, oracle):
    playground_port = _free_port()  # a fixed port: the supervisor passes it to the playground as configured
    command = [
        sys.executable, "-m", "tokend.server", "--host", "127.0.0.1", "--port", "0", "--workers", "1",
        "--metrics-port", "0", "--reload-interval", "0", "--playground-port", str(playground_port),
        "--grace-period", "5",
    ]
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = JsonClient(f"http://127.0.0.1:{playground_port}/")
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.get("/healthz").status == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "the playground of tokend serve never answered"
            time.sleep(0.2)
        assert client.get("/").headers["Content-Type"].startswith("text/html")
        reply = client.post("/api/v1/encode", {"model": "cl100k_base", "text": "beside the workers"})
        assert reply.json()["results"][0]["ids"] == oracle["cl100k_base"].encode("beside the workers")
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        with pytest.raises(OSError):  # the playground child went down with the server
            client.get("/healthz")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
        log.close()
