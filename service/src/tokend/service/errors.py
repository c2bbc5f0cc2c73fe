"""The service layer's one error taxonomy: what went wrong, as facts every front-end can translate.

```
Exception
├── RequestError                        something about this call (raised by the service layer)
│   ├── InvalidRequest                  a request field is wrong (.field .description)     INVALID_INPUT
│   ├── RequestLimitExceeded            a configured limit (.limit_name .limit .actual)      LIMIT_EXCEEDED
│   ├── ServiceUnavailable              not ready yet, or draining (.reason)                 UNAVAILABLE
│   ├── DeadlineExpired                 the deadline passed, between items or midway         DEADLINE_EXPIRED
│   └── CallCancelled                   the caller went away                                 CANCELLED
└── BatchItemError                      a domain error on one item (.field "inputs[3]" .index .cause)
```
Domain errors (``tokend.errors``) keep their own classes: a disallowed special token, an unknown token id,
invalid UTF-8 under strict decoding and a token budget out of range or unmeetable (InvalidBudgetError) are
INVALID_INPUT; a model version that cannot do the operation is UNSUPPORTED, its reason telling which: its tokens do
not spell the text, so it has no offsets, cut points or chunks in it (OffsetsUnavailableError,
OFFSETS_UNAVAILABLE_ERROR), or it has no chat format (ChatFormatNotSetError, CHAT_FORMAT_NOT_SET_ERROR; the call
succeeds once the registry has a version with one, or with another model); ModelNotFoundError is NOT_FOUND; RegistryError
is UNAVAILABLE; a model that does not parse or verify (ModelFormatError, ChecksumMismatchError,
VersionConflictError) is MODEL_BROKEN. Chat: a message or tool a chat format refuses (ChatRequestError)
and a template that raises or fails (ChatTemplateError) are INVALID_INPUT, the field being the path inside
the conversation (``conversations[2].messages[1].role``); a template stopped by its time or size limit is
LIMIT_EXCEEDED (``chat_template_seconds`` / ``chat_template_max_chars``), one refused because the worker
renders as many calls as it may ("busy") UNAVAILABLE (retry). :func:`describe` turns any of them into a :class:`Failure`; each
adapter has one small table from ``Failure.kind`` to its own status (gRPC code, HTTP status, exit code) and
one from ``Failure.hint`` to advice in its own vocabulary. Anything :func:`describe` does not know is a bug
(None): the adapter answers "internal" and logs the traceback.

Echoed input (a model reference, a token string) is cut to ``ECHO_CHARS`` characters by :func:`echo`, so an
error about a megabyte of input is still a short line.

    >>> failure = describe(BatchItemError("inputs[2]", 2, UnknownTokenIdError(100264)))
    >>> failure.kind, failure.field, failure.metadata
    (<ErrorKind.INVALID_INPUT: 'invalid_input'>, 'inputs[2]', {'token_id': 100264, 'item': 2})
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from tokend_api import CHAT_TEMPLATE_MAX_CHARS, CHAT_TEMPLATE_SECONDS, Reason

from tokend.errors import (
    ChatFormatNotSetError,
    ChatRequestError,
    ChatTemplateError,
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    InvalidBudgetError,
    ModelFormatError,
    ModelNotFoundError,
    OffsetsUnavailableError,
    RegistryError,
    UnknownTokenIdError,
    VersionConflictError,
)

__all__ = [
    "ECHO_CHARS",
    "BatchItemError",
    "CallCancelled",
    "DeadlineExpired",
    "ErrorKind",
    "Failure",
    "Hint",
    "InvalidRequest",
    "RequestError",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "describe",
    "echo",
]

# Input quoted back in messages, logs and error details is cut to this many characters.
ECHO_CHARS = 100


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` as it may be quoted back: whole when short, else a prefix saying how long it was.

    >>> echo("x" * 1_000_000)[-32:]
    'xxx… (1000000 characters in all)'
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters in all)"


class ErrorKind(enum.Enum):
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    LIMIT_EXCEEDED = "limit_exceeded"
    UNAVAILABLE = "unavailable"
    MODEL_BROKEN = "model_broken"
    DEADLINE_EXPIRED = "deadline_expired"
    CANCELLED = "cancelled"
    # The model version cannot do this operation (its tokens do not spell the text; it has no chat format):
    # well formed, and it succeeds with another model or version. The reason says which.
    UNSUPPORTED = "unsupported"


class Hint(enum.Enum):
    """How to fix the call, which each front-end words with its own field or flag names."""

    ALLOW_SPECIAL_TOKEN = "allow_special_token"  # allow the token, or stop disallowing it
    DECODE_LENIENTLY = "decode_leniently"  # replace invalid UTF-8, or ask for bytes


class RequestError(Exception):
    """Base of the service layer's own request errors."""


class InvalidRequest(RequestError, ValueError):
    """A request field is wrong, e.g. ``special_tokens.allowed.tokens`` or ``model``."""

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

    def __init__(self, completed: int, total: int, *, waiting: str | None = None, during: str | None = None) -> None:
        if during is not None:  # an engine call that gave up midway: see tokend.engine.call_stop
            message = (
                f"deadline exceeded while encoding {during}; work for this call was stopped midway. "
                "Give the call a longer deadline or send smaller requests"
            )
        elif waiting is not None:  # before any work: see service/admission.py
            message = (
                f"deadline exceeded while waiting {waiting}; no work was done for this call. "
                "Give the call a longer deadline, retry, or send smaller requests"
            )
        else:
            message = (
                f"deadline exceeded after {completed} of {total} batch items; work for this call was stopped. "
                "Give the call a longer deadline or send smaller batches"
            )
        super().__init__(message)
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


@dataclass(frozen=True)
class Failure:
    """One error as facts: ``message`` (without advice), the request ``field`` it is about (BadRequest),
    the ErrorInfo ``reason`` and ``metadata`` (values as found: ints, strings, lists), the ``limit_name``
    of a limit, and a ``hint`` for the adapter to word. ``description`` is the message without the field."""

    kind: ErrorKind
    message: str
    field: str | None = None
    description: str | None = None
    reason: Reason | None = None
    metadata: Mapping[str, Any] = dataclass_field(default_factory=dict)
    limit_name: str | None = None
    hint: Hint | None = None

    @property
    def item(self) -> int | None:
        return self.metadata.get("item")


def describe(exc: BaseException) -> Failure | None:
    """The Failure for ``exc``, or None when it is not an error the service means to raise (a bug)."""
    if isinstance(exc, BatchItemError):
        return _describe_item(exc.cause, exc.field, exc.index)
    for exc_type, build in _TABLE:
        if isinstance(exc, exc_type):
            return build(exc)
    return None


def _describe_item(cause: BaseException, field: str | None, index: int | None) -> Failure | None:
    if index is None:
        index = getattr(cause, "item", None)
    if isinstance(cause, (InvalidBudgetError, OffsetsUnavailableError)):
        return _describe_budget(cause, field, index)
    if field is None:
        field = f"inputs[{index}]" if index is not None else "inputs"
    if isinstance(cause, DisallowedSpecialTokenError):
        token = echo(cause.token)
        return _item_failure(
            field, f"disallowed special token {token!r} at character offset {cause.offset}",
            Reason.DISALLOWED_SPECIAL_TOKEN_ERROR, {"token": token, "offset": cause.offset, "item": index},
            Hint.ALLOW_SPECIAL_TOKEN,
        )  # fmt: skip
    if isinstance(cause, UnknownTokenIdError):
        return _item_failure(
            field, f"token id {cause.token_id} is not a token id of this model (neither a rank nor a special token)",
            Reason.UNKNOWN_TOKEN_ID_ERROR, {"token_id": cause.token_id, "item": index},
        )  # fmt: skip
    if isinstance(cause, UnicodeDecodeError):
        return _item_failure(
            field, f"the decoded bytes are not valid UTF-8 at byte offset {cause.start} ({cause.reason})",
            Reason.UNICODE_DECODE_ERROR, {"offset": cause.start, "item": index}, Hint.DECODE_LENIENTLY,
        )  # fmt: skip
    if isinstance(cause, ChatRequestError):
        return _chat_failure(cause, field, index)
    return describe(cause) if not isinstance(cause, BatchItemError) else None


def _describe_budget(
    cause: InvalidBudgetError | OffsetsUnavailableError, field: str | None, index: int | None
) -> Failure:
    """A budget argument (the argument is the field, or the item whose text it cannot meet), or a model
    without offsets in an item's text."""
    if isinstance(cause, InvalidBudgetError):
        field = field or cause.argument
        metadata = {"argument": cause.argument, "item": index}
        kind, reason = ErrorKind.INVALID_INPUT, Reason.INVALID_BUDGET_ERROR
    else:
        field = field or (f"inputs[{index}]" if index is not None else "model")
        metadata = {"model": echo(cause.model), "position": cause.position, "item": index}
        kind, reason = ErrorKind.UNSUPPORTED, Reason.OFFSETS_UNAVAILABLE_ERROR
    description = str(cause)
    return Failure(
        kind, f"{field}: {description}", field=field, description=description, reason=reason,
        metadata={key: value for key, value in metadata.items() if value is not None},
    )  # fmt: skip


_TEMPLATE_LIMITS = {"time_limit": CHAT_TEMPLATE_SECONDS, "size_limit": CHAT_TEMPLATE_MAX_CHARS}


# A chat error's problem and field path quote the caller's text (a role, a part's type, a key of extra
# fields) and a template's raise_exception message: bounded like echoed input, so the error stays within
# gRPC's metadata limits (16 KiB; a 3,000-character role made it "Stream removed" instead of the error).
CHAT_PROBLEM_CHARS = 400
CHAT_FIELD_CHARS = 200


def _chat_failure(cause: ChatRequestError, item_field: str | None, index: int | None) -> Failure:
    """A chat request error: its field is the path inside the conversation, under the batch item."""
    parts = [part for part in (item_field, cause.field) if part]
    field = echo(".".join(parts), CHAT_FIELD_CHARS) if parts else None
    problem = echo(cause.problem, CHAT_PROBLEM_CHARS)
    message = f"{field}: {problem}" if field else problem
    inner_field = echo(cause.field, CHAT_FIELD_CHARS) if cause.field else None
    metadata = {"item": index, "message_index": cause.message_index, "field": inner_field}
    if isinstance(cause, ChatTemplateError):
        metadata["template_failure"] = cause.reason
        if cause.reason == "busy":  # the worker renders as many calls as it may (render_turns): not the call's fault
            return Failure(ErrorKind.UNAVAILABLE, message, field=field, description=problem, reason=Reason.CHAT_TEMPLATE_ERROR,
                           metadata=_present(metadata))  # fmt: skip
        limit_name = _TEMPLATE_LIMITS.get(cause.reason)
        if limit_name is not None:
            metadata["limit_name"] = limit_name
            return Failure(
                ErrorKind.LIMIT_EXCEEDED, message, field=field, description=problem,
                reason=Reason.CHAT_TEMPLATE_ERROR, metadata=_present(metadata), limit_name=limit_name,
            )  # fmt: skip
        reason = Reason.CHAT_TEMPLATE_ERROR
    else:
        reason = Reason.CHAT_REQUEST_ERROR
    return Failure(
        ErrorKind.INVALID_INPUT, message, field=field, description=problem, reason=reason,
        metadata=_present(metadata),
    )  # fmt: skip


def _present(metadata: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in metadata.items() if value is not None}


def _chat_format_not_set(exc: ChatFormatNotSetError) -> Failure:
    return Failure(
        ErrorKind.UNSUPPORTED, str(exc), reason=Reason.CHAT_FORMAT_NOT_SET_ERROR,
        metadata={"ref": echo(str(exc.ref))},
    )  # fmt: skip


def _item_failure(
    field: str, description: str, reason: Reason, metadata: dict[str, Any], hint: Hint | None = None
) -> Failure:
    return Failure(
        ErrorKind.INVALID_INPUT, f"{field}: {description}", field=field, description=description, reason=reason,
        metadata={key: value for key, value in metadata.items() if value is not None}, hint=hint,
    )  # fmt: skip


def _invalid_request(exc: InvalidRequest) -> Failure:
    return Failure(
        ErrorKind.INVALID_INPUT, str(exc), field=exc.field, description=exc.description,
        reason=Reason.INVALID_REQUEST, metadata={"field": exc.field},
    )  # fmt: skip


def _model_not_found(exc: ModelNotFoundError) -> Failure:
    available = [str(name) for name in exc.available]
    message = str(exc)
    if available and not all(name in message for name in available):
        message += f"; available: {', '.join(available)}"
    return Failure(
        ErrorKind.NOT_FOUND, message, field="model", reason=Reason.MODEL_NOT_FOUND_ERROR,
        metadata={"ref": echo(str(exc.ref)), "available": available},
    )  # fmt: skip


def _limit(exc: RequestLimitExceeded) -> Failure:
    return Failure(
        ErrorKind.LIMIT_EXCEEDED, str(exc), reason=Reason.REQUEST_LIMIT_EXCEEDED,
        metadata={"limit_name": exc.limit_name, "limit": exc.limit, "actual": exc.actual}, limit_name=exc.limit_name,
    )  # fmt: skip


def _plain(kind: ErrorKind, prefix: str = "") -> Any:
    def build(exc: BaseException) -> Failure:
        return Failure(kind, prefix + str(exc))

    return build


# First match wins: subclasses before their bases.
_TABLE: tuple[tuple[Any, Any], ...] = (
    (
        (DisallowedSpecialTokenError, UnknownTokenIdError, UnicodeDecodeError, InvalidBudgetError, OffsetsUnavailableError),
        lambda exc: _describe_item(exc, None, None),
    ),
    (ChatRequestError, lambda exc: _chat_failure(exc, None, None)),
    (ChatFormatNotSetError, _chat_format_not_set),
    (InvalidRequest, _invalid_request),
    (ModelNotFoundError, _model_not_found),
    (RequestLimitExceeded, _limit),
    (ServiceUnavailable, _plain(ErrorKind.UNAVAILABLE)),
    (DeadlineExpired, _plain(ErrorKind.DEADLINE_EXPIRED)),
    (CallCancelled, _plain(ErrorKind.CANCELLED, "cancelled: ")),
    (RegistryError, _plain(ErrorKind.UNAVAILABLE, "model registry unavailable: ")),
    (
        (ModelFormatError, ChecksumMismatchError, VersionConflictError),
        _plain(ErrorKind.MODEL_BROKEN, "the requested model version cannot be served: "),
    ),
)
