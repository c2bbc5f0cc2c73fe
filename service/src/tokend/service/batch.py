"""Run one function over the items of a batch, honouring the call's deadline and cancellation.

Between items the call is checked: once its deadline has passed, or the caller has gone, the remaining
items are not processed (DeadlineExpired / CallCancelled). A domain error on item ``i`` is re-raised as
BatchItemError naming ``inputs[i]``, so every front-end can say which item was wrong.

Not handled: interrupting one long item midway (items are bounded by the request size limit).

    >>> run_batch(["a", "bb"], len, call=None)
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from tokend.errors import TokendError
from tokend.service.errors import BatchItemError, CallCancelled, DeadlineExpired

__all__ = ["run_batch", "CallState"]

Item = TypeVar("Item")
Result = TypeVar("Result")


class CallState(Protocol):
    """What the batch loop asks of a call (grpc.ServicerContext has both methods)."""

    def time_remaining(self) -> float | None: ...

    def is_active(self) -> bool: ...


def run_batch(
    items: Sequence[Item],
    fn: Callable[[int, Item], Result] | Callable[[Item], Result],
    *,
    call: CallState | None,
    field: str = "inputs",
    with_index: bool = False,
) -> list[Result]:
    """``[fn(item) for item in items]`` (``fn(index, item)`` with ``with_index``), stopping when the call
    expires or is cancelled."""
    results: list[Result] = []
    for index, item in enumerate(items):
        if call is not None:
            check_call(call, completed=index, total=len(items))
        try:
            results.append(fn(index, item) if with_index else fn(item))  # type: ignore[call-arg]
        except (TokendError, UnicodeDecodeError) as exc:
            raise BatchItemError(f"{field}[{index}]", index, exc) from exc
    return results


# A client ends a call at its own deadline, which the server's (counted from the request's arrival) trails by
# the transit time: a call that goes inactive this close to its deadline ran out of time, it was not cancelled.
DEADLINE_SLACK_SECONDS = 0.25


def check_call(call: CallState, *, completed: int, total: int) -> None:
    """Raise DeadlineExpired / CallCancelled when the call should stop now."""
    remaining = call.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExpired(completed, total)
    if not call.is_active():
        if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
            raise DeadlineExpired(completed, total)
        raise CallCancelled(f"the client cancelled the call after {completed} of {total} batch items")
