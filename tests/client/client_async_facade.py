"""Drive the asyncio client from synchronous tests: an event loop in a thread, and a blocking facade.

    runner = AsyncRunner()
    facade = BlockingFacade(async_encoding, runner)
    facade.encode("hi")      # == await async_encoding.encode("hi"), run on the runner's loop
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from typing import Any


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
