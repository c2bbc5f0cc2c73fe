"""A stand-in for a unary call's grpc.ServicerContext as SendDeadlines and the record writers read it.

``end`` reports the call's end to the callbacks given to ``add_callback`` (grpcio does so from its polling
thread), first marking the call's state as grpcio does: ``"closed"`` (its answer sent) or ``"cancelled"`` (by
its client). ``over=True``: the call ended before ``add_callback`` (its client cancelled it while its handler
ran). ``cancel`` is the server's cancel; ``ends_on_cancel=False`` leaves its end unreported, as when gRPC has
not yet told it.

    >>> context = FakeContext()
    >>> context.add_callback(lambda: print("ended"))
    True
    >>> context.end("closed")
    ended
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class _State:
    def __init__(self, client: str) -> None:
        self.client = client  # grpc._server's call state field read by call_outcome.ended_by_client


class FakeContext:
    def __init__(self, peer: str = "ipv4:127.0.0.1:3", *, client: str = "open", over: bool = False,
                 ends_on_cancel: bool = True) -> None:  # fmt: skip
        self.callbacks: list[Callable[[], None]] = []
        self.cancelled = threading.Event()
        self._state = _State(client)
        self._peer, self._over, self._ends_on_cancel = peer, over, ends_on_cancel

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self._over:
            return False
        self.callbacks.append(callback)
        return True

    def peer(self) -> str:
        return self._peer

    def code(self) -> None:
        return None

    def time_remaining(self) -> float:
        return 30.0

    def end(self, client: str | None = None) -> None:
        if client is not None:
            self._state.client = client
        for callback in self.callbacks:
            callback()

    def cancel(self) -> None:
        self.cancelled.set()
        if self._ends_on_cancel:
            self.end("cancelled")
