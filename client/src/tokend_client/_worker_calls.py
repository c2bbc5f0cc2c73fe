"""Which server worker processes answered a client's calls (from the `tokend-worker` response metadata).

Diagnostic only: it shows whether calls are spread over every worker of a server and over every replica.

    calls = WorkerCalls()
    calls.record(call.initial_metadata())
    calls.snapshot()  # {"4711": 12, "4712": 9}
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from typing import Any

from tokend_api import WORKER_METADATA_KEY



class WorkerCalls:
    """A thread-safe count of answered calls per worker pid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()

    def record(self, metadata: Iterable[tuple[str, Any]] | None) -> None:
        for key, value in metadata or ():
            if key == WORKER_METADATA_KEY:
                worker = value.decode() if isinstance(value, bytes) else str(value)
                with self._lock:
                    self._counts[worker] += 1
                return

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)
