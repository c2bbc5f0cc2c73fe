"""Fixtures for the server tests: a real registry under a temp dir and shared running servers.

Servers are expensive (a supervisor and spawned workers), so the read-only tests of a module share
one (module scope). Tests that change a server's state (signals, reloads) start their own.
"""

from __future__ import annotations

import grpc
import pytest

from support.registries import build_registry
from support.server import TokendServer

# Limits small enough to reach in a test, large enough for the corpus.
SMALL_LIMITS = ("--max-batch-items", "64", "--max-request-bytes", "200000", "--max-message-bytes", "1048576")


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory registry with cl100k_base@1 (alias ``stable``) and o200k_base@1 (OpenAI's files).
    Read-only by convention: tests that publish build their own."""
    from tokend.registry import Registry

    root = build_registry(tmp_path_factory.mktemp("registry") / "models", ["cl100k_base", "o200k_base"])
    Registry.open(root).set_alias("cl100k_base", "stable", 1)
    return root


@pytest.fixture(scope="session")
def shared_server(registry_dir):
    """One worker, small limits, metrics on; shared by every read-only test of the session."""
    server = TokendServer(*SMALL_LIMITS, "--reflection", registry=registry_dir, workers=1).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stub(shared_server):
    return shared_server.stub()


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """Call and return the grpc.RpcError it must raise (fails the test if it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value
