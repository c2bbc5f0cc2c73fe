"""Run one function over the items of a batch, honouring the call's deadline and cancellation.

Between items the call is checked: once its deadline has passed, or the client has gone, the
remaining items are not processed (DeadlineExpired / CallCancelled). A domain error on item ``i`` is
re-raised as BatchItemError naming ``inputs[i]``, so the status details say which item was wrong.

Not handled: interrupting one long item midway (items are bounded by the request size limit).

    >>> run_batch(["a", "bb"], len, call=None)
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from tokend.errors import TokendError
from tokend.server.request_errors import BatchItemError, CallCancelled, DeadlineExpired

__all__ = ["run_batch", "CallState"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class CallState(Protocol):
    """The part of grpc.ServicerContext the batch loop looks at."""

    def time_remaining(self) -> float | None: ...

    def is_active(self) -> bool: ...


def run_batch(
    items: Sequence[Item],
    fn: Callable[[Item], Result],
    *,
    call: CallState | None,
    field: str = "inputs",
) -> list[Result]:
    """``[fn(item) for item in items]``, stopping when the call expires or is cancelled."""
    results: list[Result] = []
    for index, item in enumerate(items):
        if call is not None:
            _check_call(call, completed=index, total=len(items))
        try:
            results.append(fn(item))
        except (TokendError, UnicodeDecodeError) as exc:
            raise BatchItemError(f"{field}[{index}]", index, exc) from exc
    return results


def _check_call(call: CallState, *, completed: int, total: int) -> None:
    remaining = call.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExpired(completed, total)
    if not call.is_active():
        raise CallCancelled(f"the client cancelled the call after {completed} of {total} batch items")
