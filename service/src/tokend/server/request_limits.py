"""The per-request limits of a worker: items per batch and input bytes per request.

gRPC itself enforces the message size (``max_message_bytes``, RESOURCE_EXHAUSTED from the transport);
these limits bound the work a single well-formed message can ask for. They are checked before any
work starts, so an oversized request costs almost nothing.

    >>> limits = RequestLimits(max_batch_items=2, max_request_bytes=10)
    >>> limits.check(items=2, input_bytes=10)
    >>> limits.check(items=3, input_bytes=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tokend.server.request_errors.RequestLimitExceeded: request has 3 batch items, over the limit of 2 (max_batch_items); ...
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokend.server.request_errors import RequestLimitExceeded

__all__ = ["RequestLimits", "input_bytes"]


def input_bytes(inputs: Iterable[Any]) -> int:
    """Bytes of a batch of ``Input`` messages: UTF-8 bytes of text (what crossed the wire), length of data."""
    total = 0
    for item in inputs:
        total += len(item.data) if item.WhichOneof("content") == "data" else len(item.text.encode("utf-8"))
    return total


@dataclass(frozen=True)
class RequestLimits:
    max_batch_items: int
    max_request_bytes: int

    def check(self, *, items: int, input_bytes: int) -> None:
        """Raise RequestLimitExceeded when a request is over either limit."""
        if items > self.max_batch_items:
            raise RequestLimitExceeded(
                "max_batch_items",
                self.max_batch_items,
                items,
                unit="batch items",
                hint="split the batch into several requests",
            )
        if input_bytes > self.max_request_bytes:
            raise RequestLimitExceeded(
                "max_request_bytes",
                self.max_request_bytes,
                input_bytes,
                unit="input bytes",
                hint="send fewer or shorter inputs per request",
            )
