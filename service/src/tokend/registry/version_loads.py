"""Loads in flight: each version is loaded once, in a background thread, and callers wait a bounded time.

A load (read, verify, parse) of a version from a slow registry may take until its deadline. Run in the
caller's thread, it would hold that thread (a server's request handler) as long, and every caller of the
same version would queue behind it. Here the load runs in its own daemon thread; callers wait on it:

    >>> loads = VersionLoads(max_waiting=2)
    >>> finish = threading.Event()                 # stands in for reading, verifying and parsing m@1
    >>> load = loads.start("m@1", lambda: finish.wait() and "the loaded model")
    >>> loads.start("m@1", lambda: "a second load") is load          # one load per version at a time
    True
    >>> loads.wait(load, timeout=0.05)        # a request: ModelLoadingError after its timeout; the load goes on
    Traceback (most recent call last):
    tokend.errors.ModelLoadingError: m@1 is still loading (for ... s); retry shortly
    >>> finish.set()
    >>> loads.wait(load, timeout=None)        # library, CLI, start-up: until the load ends (its deadline bounds it)
    'the loaded model'

Bounded waiters: at most `max_waiting` callers with a timeout wait at once, over all versions; more get
ModelLoadingError at once. So loads of one slow model can never hold every handler thread of a server, and
calls for loaded models and health checks keep flowing. Callers that wait without a timeout are not
counted: they chose to wait (a start-up load, a command-line tool).

`work` records its outcome (the loaded model, or the failure) before it returns: the load leaves the
in-flight table only after that, so a version is always either in flight or recorded, never neither
(which would let a second load start).

Not handled: cancelling a load (it runs to its end or its deadline; nobody waiting does not stop it).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from tokend.errors import ModelLoadingError, TokendError

DEFAULT_MAX_WAITING = 2  # callers with a bounded wait blocked on loads at once (a worker has 8 handler threads)


@dataclass(eq=False)
class Load:
    """One load in flight (or finished): `done` is set once `result` or `error` is."""

    key: Hashable
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class VersionLoads:
    """The loads in flight, by key (a ModelVersionRef), each in its own daemon thread."""

    def __init__(self, *, max_waiting: int = DEFAULT_MAX_WAITING) -> None:
        self._lock = threading.Lock()
        self._running: dict[Hashable, Load] = {}
        self._waiting = 0  # callers blocked in wait() with a timeout
        self.max_waiting = max_waiting

    def start(self, key: Hashable, work: Callable[[], Any]) -> Load:
        """The load of `key` in flight, started now (running `work` in a new thread) unless one is."""
        with self._lock:
            load = self._running.get(key)
            if load is not None:
                return load
            load = Load(key)
            self._running[key] = load
        thread = threading.Thread(target=self._run, args=(load, work), name=f"tokend-load {key}", daemon=True)
        thread.start()
        return load

    def running(self, key: Hashable) -> Load | None:
        with self._lock:
            return self._running.get(key)

    def _run(self, load: Load, work: Callable[[], Any]) -> None:
        try:
            load.result = work()
        except BaseException as caught:  # noqa: BLE001 - handed to every waiter, never lost in this thread
            load.error = caught
        finally:
            with self._lock:
                self._running.pop(load.key, None)
            load.done.set()

    def wait(self, load: Load, timeout: float | None) -> Any:
        """The load's result (or its error, raised afresh). With a `timeout`, ModelLoadingError when the
        load has not finished by then, or at once when `max_waiting` bounded callers already wait."""
        if not load.done.is_set():
            if timeout is None:
                load.done.wait()
            else:
                with self._lock:
                    crowded = self._waiting >= self.max_waiting
                    if not crowded:
                        self._waiting += 1
                if crowded:
                    raise ModelLoadingError(
                        str(load.key),
                        f"{load.key} is still loading (for {time.monotonic() - load.started:.1f} s) and "
                        f"{self.max_waiting} calls already wait for loads; retry shortly",
                    )
                try:
                    load.done.wait(timeout)
                finally:
                    with self._lock:
                        self._waiting -= 1
                if not load.done.is_set():
                    raise ModelLoadingError(
                        str(load.key),
                        f"{load.key} is still loading (for {time.monotonic() - load.started:.1f} s); retry shortly",
                    )
        if load.error is not None:
            raise fresh_error(load.error)
        return load.result


def fresh_error(error: BaseException) -> BaseException:
    """A copy of `error` to raise in one more thread: raising one instance from many threads (or many
    times) would chain its tracebacks together and grow them forever."""
    if isinstance(error, TokendError):
        return copy.copy(error).with_traceback(None)
    return error
