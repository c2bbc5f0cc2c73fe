"""Fixtures for the client tests: real `tokend serve` subprocesses, the clients, and an asyncio runner.

One 2-worker server on the embedded default registry is shared by the whole client suite (starting one
costs about a second; the tests that stop or restrict servers start their own).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import pytest
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


class AsyncRunner:
    """An event loop in a background thread; `run(coroutine)` blocks until its result.

    It lets one synchronous test drive the async client exactly as an asyncio program would.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="async-client-loop", daemon=True)
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class BlockingFacade:
    """The async object's surface made blocking: coroutine methods run on the runner, the rest pass through.

    `BlockingFacade(async_encoding, runner).encode("hi")` is `await async_encoding.encode("hi")`.
    """

    def __init__(self, target: Any, runner: AsyncRunner) -> None:
        self._target = target
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if inspect.iscoroutinefunction(value):

            @functools.wraps(value)
            def blocking(*args: Any, **kwargs: Any) -> Any:
                return self._runner.run(value(*args, **kwargs))

            return blocking
        return value


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
