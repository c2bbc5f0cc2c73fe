"""Exceptions the server layer raises about a request (the domain's own live in ``tokend.errors``).

```
Exception
├── RequestError                      something about this call; mapped to a status in status_mapping
│   ├── InvalidRequest                a field the domain never sees is wrong (.field)
│   ├── RequestLimitExceeded          a configured limit (.limit_name .limit .actual)
│   ├── ServiceUnavailable            not ready yet, or draining (.reason)
│   ├── DeadlineExpired               the deadline passed between batch items (.completed .total)
│   └── CallCancelled                 the client went away
└── BatchItemError                    a domain error on one batch item (.field "inputs[3]", .index, .cause)
```
These carry facts, not status codes: `status_mapping` is the one place that turns them into codes.
"""

from __future__ import annotations

__all__ = [
    "RequestError",
    "InvalidRequest",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "DeadlineExpired",
    "CallCancelled",
    "BatchItemError",
]


class RequestError(Exception):
    """Base of the server's own request errors."""


class InvalidRequest(RequestError, ValueError):
    """A request field the domain never sees is wrong, e.g. ``special_tokens.allowed.tokens``."""

    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field
        self.description = description


class RequestLimitExceeded(RequestError):
    """A configured limit was exceeded; the message states the limit and how to stay under it."""

    def __init__(self, limit_name: str, limit: int, actual: int, *, unit: str, hint: str) -> None:
        super().__init__(f"request has {actual} {unit}, over the limit of {limit} ({limit_name}); {hint}")
        self.limit_name = limit_name
        self.limit = limit
        self.actual = actual


class ServiceUnavailable(RequestError):
    """This worker cannot answer now (models still loading, or shutting down): retry, maybe elsewhere."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DeadlineExpired(RequestError):
    """The call's deadline passed; work stopped after ``completed`` of ``total`` items."""

    def __init__(self, completed: int, total: int) -> None:
        super().__init__(
            f"deadline exceeded after {completed} of {total} batch items; work for this call was stopped. "
            "Give the call a longer deadline or send smaller batches"
        )
        self.completed = completed
        self.total = total


class CallCancelled(RequestError):
    """The client cancelled the call (or disconnected); work for it was stopped."""


class BatchItemError(Exception):
    """A domain error raised while processing one batch item; ``field`` names it, e.g. ``inputs[3]``."""

    def __init__(self, field: str, index: int, cause: BaseException) -> None:
        super().__init__(f"{field}: {cause}")
        self.field = field
        self.index = index
        self.cause = cause
