"""The one table from exceptions to gRPC status codes, with rich details (google.rpc.Status).

Every error a client can see is decided here: the servicer and the domain raise typed exceptions,
the error interceptor calls :func:`to_rpc_status`, nothing else picks a status code.

| exception                                   | code                | details                               |
|---------------------------------------------|---------------------|---------------------------------------|
| DisallowedSpecialTokenError (per item)      | INVALID_ARGUMENT    | BadRequest inputs[i]; ErrorInfo       |
| UnknownTokenIdError (per item)              | INVALID_ARGUMENT    | BadRequest inputs[i]; ErrorInfo       |
| UnicodeDecodeError (Decode, strict)         | INVALID_ARGUMENT    | BadRequest inputs[i]; ErrorInfo       |
| InvalidRequest                              | INVALID_ARGUMENT    | BadRequest <field>                    |
| ModelNotFoundError                          | NOT_FOUND           | message lists what exists; ErrorInfo  |
| RequestLimitExceeded                        | RESOURCE_EXHAUSTED  | message states the limit; QuotaFailure|
| ServiceUnavailable, RegistryError           | UNAVAILABLE         |                                       |
| DeadlineExpired                             | DEADLINE_EXCEEDED   |                                       |
| CallCancelled                               | CANCELLED           |                                       |
| ModelFormatError, ChecksumMismatchError,    | FAILED_PRECONDITION | (the model on the registry is broken) |
|   VersionConflictError                      |                     |                                       |
| anything else                               | INTERNAL            | a bug: logged with its traceback      |

``google.rpc.ErrorInfo`` (domain ``tokend.dev``) carries the exception's attributes as strings so a
client can rebuild the same exception class. Reasons and metadata keys (a stable contract):
DISALLOWED_SPECIAL_TOKEN_ERROR {token, offset, item}; UNKNOWN_TOKEN_ID_ERROR {token_id, item};
UNICODE_DECODE_ERROR {offset, item}; INVALID_REQUEST {field}; MODEL_NOT_FOUND_ERROR {ref, available
(comma-separated)}; REQUEST_LIMIT_EXCEEDED {limit_name, limit, actual}. ``item`` is absent when the error is not about one item.

Not handled: localized messages (``google.rpc.LocalizedMessage``) and retry hints.

    >>> from tokend.server.request_errors import ServiceUnavailable
    >>> status, is_bug = to_rpc_status(ServiceUnavailable("models are still loading"))
    >>> status.code, is_bug   # 14 = UNAVAILABLE
    (14, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tokend.errors import (
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    ModelFormatError,
    ModelNotFoundError,
    RegistryError,
    UnknownTokenIdError,
    VersionConflictError,
)
from tokend.server.request_errors import (
    BatchItemError,
    CallCancelled,
    DeadlineExpired,
    InvalidRequest,
    RequestLimitExceeded,
    ServiceUnavailable,
)

__all__ = ["ERROR_DOMAIN", "to_rpc_status", "code_of"]

ERROR_DOMAIN = "tokend.dev"


@dataclass(frozen=True)
class _Mapped:
    code: int
    message: str
    details: tuple[Any, ...] = ()


def to_rpc_status(exc: BaseException) -> tuple[status_pb2.Status, bool]:
    """The google.rpc.Status for ``exc`` and whether it is a bug (INTERNAL: log it with a traceback)."""
    field = None
    cause = exc
    if isinstance(exc, BatchItemError):
        field, cause = exc.field, exc.cause
    for exc_type, build in _TABLE:
        if isinstance(cause, exc_type):
            mapped = build(cause, field)
            break
    else:
        mapped = _Mapped(code_pb2.INTERNAL, f"internal error ({type(cause).__name__}); it has been logged")
    status = status_pb2.Status(code=mapped.code, message=mapped.message)
    for detail in mapped.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status, mapped.code == code_pb2.INTERNAL


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The grpc.StatusCode that :func:`to_rpc_status` picks for ``exc``."""
    status, _ = to_rpc_status(exc)
    return _STATUS_CODES[status.code]


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _field_violation(field: str, description: str) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[error_details_pb2.BadRequest.FieldViolation(field=field, description=description)]
    )


def _error_info(reason: str, **metadata: Any) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(
        reason=reason,
        domain=ERROR_DOMAIN,
        metadata={key: str(value) for key, value in metadata.items() if value is not None},
    )


def _item_field(exc: BaseException, field: str | None) -> str:
    if field is not None:
        return field
    item = getattr(exc, "item", None)
    return f"inputs[{item}]" if item is not None else "inputs"


def _item_index(field: str) -> int | None:
    if field.startswith("inputs[") and field.endswith("]"):
        return int(field[len("inputs[") : -1])
    return None


def _disallowed_special(exc: DisallowedSpecialTokenError, field: str | None) -> _Mapped:
    where = _item_field(exc, field)
    description = (
        f"disallowed special token {exc.token!r} at character offset {exc.offset}; "
        "to encode it as its special id, add it to special_tokens.allowed; "
        "to encode it as ordinary text, leave it out of special_tokens.disallowed (e.g. disallowed mode NONE)"
    )
    return _Mapped(
        code_pb2.INVALID_ARGUMENT,
        f"{where}: {description}",
        (
            _field_violation(where, description),
            _error_info("DISALLOWED_SPECIAL_TOKEN_ERROR", token=exc.token, offset=exc.offset, item=_item_index(where)),
        ),
    )


def _unknown_token_id(exc: UnknownTokenIdError, field: str | None) -> _Mapped:
    where = _item_field(exc, field)
    description = f"token id {exc.token_id} is not in the model's vocabulary (neither a rank nor a special token)"
    return _Mapped(
        code_pb2.INVALID_ARGUMENT,
        f"{where}: {description}",
        (
            _field_violation(where, description),
            _error_info("UNKNOWN_TOKEN_ID_ERROR", token_id=exc.token_id, item=_item_index(where)),
        ),
    )


def _invalid_utf8(exc: UnicodeDecodeError, field: str | None) -> _Mapped:
    where = _item_field(exc, field)
    description = (
        f"the decoded bytes are not valid UTF-8 at byte offset {exc.start} ({exc.reason}); "
        "use errors ERRORS_REPLACE, or output OUTPUT_BYTES to get the raw bytes"
    )
    return _Mapped(
        code_pb2.INVALID_ARGUMENT,
        f"{where}: {description}",
        (
            _field_violation(where, description),
            _error_info("UNICODE_DECODE_ERROR", offset=exc.start, item=_item_index(where)),
        ),
    )


def _invalid_request(exc: InvalidRequest, field: str | None) -> _Mapped:
    return _Mapped(
        code_pb2.INVALID_ARGUMENT,
        str(exc),
        (_field_violation(exc.field, exc.description), _error_info("INVALID_REQUEST", field=exc.field)),
    )


def _model_not_found(exc: ModelNotFoundError, field: str | None) -> _Mapped:
    available = list(getattr(exc, "available", None) or [])
    message = str(exc)
    if available and not all(str(name) in message for name in available):
        message += f"; available: {', '.join(map(str, available))}"
    return _Mapped(
        code_pb2.NOT_FOUND,
        message,
        (
            _field_violation("model", message),
            _error_info("MODEL_NOT_FOUND_ERROR", ref=getattr(exc, "ref", None), available=",".join(map(str, available))),
        ),
    )


def _limit(exc: RequestLimitExceeded, field: str | None) -> _Mapped:
    return _Mapped(
        code_pb2.RESOURCE_EXHAUSTED,
        str(exc),
        (
            error_details_pb2.QuotaFailure(
                violations=[error_details_pb2.QuotaFailure.Violation(subject=exc.limit_name, description=str(exc))]
            ),
            _error_info("REQUEST_LIMIT_EXCEEDED", limit_name=exc.limit_name, limit=exc.limit, actual=exc.actual),
        ),
    )


def _plain(code: int, prefix: str = "") -> Callable[[BaseException, str | None], _Mapped]:
    def build(exc: BaseException, field: str | None) -> _Mapped:
        return _Mapped(code, prefix + str(exc))

    return build


# First match wins: order subclasses before their bases.
_TABLE: Iterable[tuple[type[BaseException] | tuple[type[BaseException], ...], Callable[[Any, str | None], _Mapped]]] = (
    (DisallowedSpecialTokenError, _disallowed_special),
    (UnknownTokenIdError, _unknown_token_id),
    (UnicodeDecodeError, _invalid_utf8),
    (InvalidRequest, _invalid_request),
    (ModelNotFoundError, _model_not_found),
    (RequestLimitExceeded, _limit),
    (ServiceUnavailable, _plain(code_pb2.UNAVAILABLE)),
    (DeadlineExpired, _plain(code_pb2.DEADLINE_EXCEEDED)),
    (CallCancelled, _plain(code_pb2.CANCELLED, "cancelled: ")),
    (RegistryError, _plain(code_pb2.UNAVAILABLE, "model registry unavailable: ")),
    (
        (ModelFormatError, ChecksumMismatchError, VersionConflictError),
        _plain(code_pb2.FAILED_PRECONDITION, "the requested model version cannot be served: "),
    ),
)
