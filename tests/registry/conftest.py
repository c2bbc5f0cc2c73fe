"""Fixtures for the registry tests: a small trained model, directory registries under tmp_path and a real
static HTTP server on 127.0.0.1 (python's http.server in a thread) serving a registry directory.

Nothing here writes the registry layout by hand: models go in through `Registry.publish`.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokend.engine import train
from tokend.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
ALICE = REPO_ROOT / "corpus" / "alice29.txt"


@pytest.fixture(scope="session")
def alice_text() -> str:
    return ALICE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def trained_small(alice_text):
    """The trainer's in-memory result on the first 40 kB of Alice (vocab 512): the reference to compare with."""
    return train(alice_text[:40_000], 512, special_tokens={"<|endoftext|>": 512}, name="small")


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return tmp_path / "registry"


@pytest.fixture
def registry(registry_dir: Path) -> Iterator[Registry]:
    with Registry.open(registry_dir, create=True) as opened:
        yield opened


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


class StaticServer:
    """python's http.server serving `directory` on a free 127.0.0.1 port, in a daemon thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(5)
        self.httpd.server_close()


@pytest.fixture
def static_server():
    """Factory: `static_server(directory)` -> a started StaticServer, stopped after the test."""
    servers: list[StaticServer] = []

    def start(directory: Path) -> StaticServer:
        server = StaticServer(directory).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
