"""Fixtures for the client tests: real `tokend serve` subprocesses, the clients, and an asyncio runner.

One 2-worker server on the embedded default registry is shared by the whole client suite (starting one
costs about a second; the tests that stop or restrict servers start their own).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_async_facade import AsyncRunner, BlockingFacade
from support.server import TokendServer

import tokend_client


@pytest.fixture(scope="session")
def server() -> Iterator[TokendServer]:
    """A 2-worker server with the default models (cl100k_base, o200k_base, alice_2k)."""
    started = TokendServer(workers=2, metrics=False).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def client(server: TokendServer) -> Iterator[tokend_client.TokendClient]:
    with tokend_client.TokendClient(server.target, timeout=30) as opened:
        yield opened


@pytest.fixture(scope="session")
def async_runner() -> Iterator[AsyncRunner]:
    runner = AsyncRunner()
    try:
        yield runner
    finally:
        runner.close()


@pytest.fixture(scope="session")
def async_client(server: TokendServer, async_runner: AsyncRunner) -> Iterator[BlockingFacade]:
    async def open_client() -> tokend_client.AsyncTokendClient:
        return tokend_client.AsyncTokendClient(server.target, timeout=30)

    opened = async_runner.run(open_client())
    try:
        yield BlockingFacade(opened, async_runner)
    finally:
        async_runner.run(opened.close())
