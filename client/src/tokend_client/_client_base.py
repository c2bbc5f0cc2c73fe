"""What the sync and the async client share: settings, the record of answering workers, and the
properties built on them. Each subclass adds its own channels and calls.

    class TokendClient(ClientBase): ...
"""

from __future__ import annotations

from typing import Unpack

from ._batching import RequestLimits
from ._client_settings import ClientOptions, ClientSettings
from ._worker_calls import WorkerCalls


class ClientBase:
    def __init__(self, target: str, **options: Unpack[ClientOptions]) -> None:
        self._settings = ClientSettings.build(target, **options)
        self._worker_calls = WorkerCalls()
        self._closed = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._settings.target!r} connections={self._settings.connections}>"

    @property
    def target(self) -> str:
        return self._settings.target

    @property
    def limits(self) -> RequestLimits:
        """The per-request limits this client splits batches under (lowered when a server reports smaller)."""
        return self._settings.limits

    def worker_calls(self) -> dict[str, int]:
        """How many calls each server worker process answered, by its `tokend-worker` pid (for debugging
        load spread: with several connections every worker of a server should appear)."""
        return self._worker_calls.snapshot()
