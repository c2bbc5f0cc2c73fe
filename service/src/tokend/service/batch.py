"""Run one function over the items of a batch, honouring the call's deadline and cancellation.

Between items the call is checked: once its deadline has passed, or the caller has gone, the remaining
items are not processed (DeadlineExpired / CallCancelled). A domain error on item ``i`` is re-raised as
BatchItemError naming ``inputs[i]``, so every front-end can say which item was wrong.

`run_text_batch` does the same with one engine call per chunk of consecutive texts (the engine's batch
methods encode a chunk with the GIL released, so the worker's other calls go on meanwhile), checking the
call between chunks; a chunk that fails is redone item by item, so every error is the one `run_batch` gives.

An engine call that gives up midway (``CallStopped``: the SentencePiece core checks the call's stop between
bounded steps, see ``tokend.engine.call_stop``) becomes DeadlineExpired / CallCancelled like a check between
items. Other engine calls are not interrupted midway (their items are bounded by the request size limit).

    >>> run_batch(["a", "bb"], len, call=None)
    [1, 2]
    >>> run_text_batch(["a", "bb", b"c"], len, lambda texts: [len(text) for text in texts], call=None)
    [1, 2, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from tokend.engine.call_stop import CallStopped
from tokend.errors import TokendError
from tokend.service.errors import BatchItemError, CallCancelled, DeadlineExpired, RequestError

__all__ = ["run_batch", "run_text_batch", "stopped_midway", "CallState"]

# A chunk of texts for one engine call: ~20 ms of encoding at most, so the call's deadline is still checked often.
CHUNK_ITEMS = 256
CHUNK_CHARS = 256 * 1024

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
    first_index: int = 0,
    total: int | None = None,
) -> list[Result]:
    """``[fn(item) for item in items]`` (``fn(index, item)`` with ``with_index``), stopping when the call
    expires or is cancelled. ``items`` may be a part of a batch: its first item is item ``first_index`` of
    ``total``."""
    results: list[Result] = []
    total = len(items) if total is None else total
    for index, item in enumerate(items, start=first_index):
        if call is not None:
            check_call(call, completed=index, total=total)
        try:
            results.append(fn(index, item) if with_index else fn(item))  # type: ignore[call-arg]
        except (TokendError, UnicodeDecodeError) as exc:
            raise BatchItemError(f"{field}[{index}]", index, exc) from exc
        except CallStopped:
            raise stopped_midway(call, completed=index, total=total, during=f"{field}[{index}]") from None
    return results


# A client ends a call at its own deadline, which the server's (counted from the request's arrival) trails by
# the transit time: a call that goes inactive this close to its deadline ran out of time, it was not cancelled.
DEADLINE_SLACK_SECONDS = 0.25


def run_text_batch(
    items: Sequence[str | bytes],
    one: Callable[[str | bytes], Result],
    many: Callable[[list[str]], list[Result]],
    *,
    call: CallState | None,
    field: str = "inputs",
) -> list[Result]:
    """``run_batch(items, one)``, but runs of consecutive ``str`` items go to ``many`` (an engine batch call)
    in chunks of at most CHUNK_ITEMS items and CHUNK_CHARS characters; other items go to ``one``."""
    results: list[Result] = []
    start, total = 0, len(items)
    while start < total:
        end, chars = start, 0
        while (end < total and isinstance(items[end], str) and end - start < CHUNK_ITEMS
               and (end == start or chars + len(items[end]) <= CHUNK_CHARS)):
            chars += len(items[end])
            end += 1
        if end - start < 2:  # a single text, or bytes: as run_batch does
            end = start + 1
            results += run_batch(items[start:end], one, call=call, field=field, first_index=start, total=total)
        else:
            if call is not None:
                check_call(call, completed=start, total=total)
            try:
                results += many(list(items[start:end]))
            except CallStopped:  # not redone: the call is over
                raise stopped_midway(call, completed=start, total=total,
                                     during=f"{field}[{start}:{end}]") from None
            except (TokendError, UnicodeDecodeError):  # find the item and its error, exactly as run_batch does
                results += run_batch(items[start:end], one, call=call, field=field, first_index=start, total=total)
        start = end
    return results


def check_call(call: CallState, *, completed: int, total: int) -> None:
    """Raise DeadlineExpired / CallCancelled when the call should stop now."""
    remaining = call.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExpired(completed, total)
    if not call.is_active():
        if remaining is not None and remaining <= DEADLINE_SLACK_SECONDS:
            raise DeadlineExpired(completed, total)
        raise CallCancelled(f"the client cancelled the call after {completed} of {total} batch items")


def stopped_midway(call: CallState | None, *, completed: int, total: int, during: str) -> RequestError:
    """The error for an engine call that gave up midway (CallStopped) while working on ``during`` (an item):
    CallCancelled when the caller went away with time left, else DeadlineExpired (told apart as
    ``check_call`` does)."""
    if call is not None:
        remaining = call.time_remaining()
        if not call.is_active() and (remaining is None or remaining > DEADLINE_SLACK_SECONDS):
            return CallCancelled(f"the client cancelled the call while {during} was being encoded")
    return DeadlineExpired(completed, total, during=during)
