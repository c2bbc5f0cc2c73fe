"""Facts about the call being served, for the front-end's logs and metrics: which exact model version
answered and how much work it was. The service fills in the record; a front-end opens one per call.

    with recording() as record:
        service.encode("cl100k_base", ["hello"])
    record.model, record.operation, record.tokens        # ('cl100k_base', 1), 'encode', 1

Nothing the request contains (text, ids) is recorded: names, versions and counts only. A record also holds
what must happen when the call ends (``at_end``: the service gives back its reserved working memory there, so
the front-end's answer, built inside the record, is covered by it). A front-end whose answer is still being sent
after the record's block ends (gRPC queues a unary answer and returns; a client that does not read holds it there)
sets ``end_after`` to a function that runs the actions once the call is over (``context.add_callback``). When such
a call may still fail after its handler has answered (gRPC cancels an answer its client does not read), the
front-end also sets ``outcome_later``, and its records of the call (a log line, a status count) wait for the end.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CallRecord", "recording", "current_record"]


@dataclass
class CallRecord:
    model: tuple[str, int] | None = None  # (name, version) the call resolved
    operation: str | None = None  # "encode", "count" or "decode", once it succeeded
    items: int = 0
    tokens: int = 0  # produced (encode, count) or decoded (decode)
    input_bytes: int = 0
    held_bytes: int = 0  # of the work gate (a reservation, an answer's room), given back at the call's end
    _at_end: list[Callable[[], None]] = field(default_factory=list, repr=False)
    # Registers a function to run when the call is over (True), or answers False when it is over already; None:
    # the actions run when the outermost ``recording()`` exits. Used only when the call succeeded (an error's
    # answer is small).
    end_after: Callable[[Callable[[], None]], bool] | None = field(default=None, repr=False)
    # The front-end's, for a call whose outcome is known only once it ends, after the handler has answered:
    # ``outcome_later.then(write)`` calls ``write(status, ended)`` then (the front-end's status; a perf_counter()
    # time). None for every other call: its records are written when its handler returns.
    outcome_later: Any = field(default=None, repr=False)

    def at_end(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the outermost ``recording()`` of this call exits (also on errors)."""
        self._at_end.append(action)

    @property
    def holds_memory(self) -> bool:
        """Whether actions wait for the call's end (the service reserved working memory for it)."""
        return bool(self._at_end)


_CURRENT: ContextVar[CallRecord | None] = ContextVar("tokend_call_record", default=None)


class recording:  # noqa: N801 - used as a function: ``with recording() as record``
    """The record of the current call: a new one, or the one an outer caller opened.

    A class, not a ``@contextmanager`` generator: every call of the gRPC worker enters it in three
    interceptors, and a generator-based context manager costs several times as much per entry."""

    __slots__ = ("_record", "_token")

    def __enter__(self) -> CallRecord:
        existing = _CURRENT.get()
        if existing is not None:
            self._token = None
            return existing
        record = self._record = CallRecord()
        self._token = _CURRENT.set(record)
        return record

    def __exit__(self, *exc_info: object) -> None:
        if self._token is None:
            return
        _CURRENT.reset(self._token)
        actions = self._record._at_end
        if actions and exc_info[0] is None and self._record.end_after is not None:
            if self._record.end_after(lambda: _run(actions)):
                return
        _run(actions)


def _run(actions: list[Callable[[], None]]) -> None:
    for action in reversed(actions):
        action()


def current_record() -> CallRecord | None:
    return _CURRENT.get()
