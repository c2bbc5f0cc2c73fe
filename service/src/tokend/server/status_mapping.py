"""The gRPC front-end's one table: service-layer error kinds → gRPC status codes, with rich details.

Every error a client can see is decided here: the service raises typed exceptions, ``describe`` turns them
into facts (``tokend.service.errors``), the error interceptor calls :func:`to_rpc_status`.

| kind              | code                | details                                            |
|-------------------|---------------------|----------------------------------------------------|
| INVALID_INPUT     | INVALID_ARGUMENT    | BadRequest (inputs[i] or the field); ErrorInfo     |
| NOT_FOUND         | NOT_FOUND           | BadRequest model; ErrorInfo (ref, available)       |
| LIMIT_EXCEEDED    | RESOURCE_EXHAUSTED  | QuotaFailure; ErrorInfo (limit_name, limit, actual)|
| UNAVAILABLE       | UNAVAILABLE         |                                                    |
| MODEL_BROKEN      | FAILED_PRECONDITION | (the model on the registry is broken)              |
| DEADLINE_EXPIRED  | DEADLINE_EXCEEDED   |                                                    |
| CANCELLED         | CANCELLED           |                                                    |
| UNSUPPORTED       | FAILED_PRECONDITION | ErrorInfo: OFFSETS_UNAVAILABLE_ERROR (model, position) with BadRequest (inputs[i]), or CHAT_FORMAT_NOT_SET_ERROR (ref) |
| (not an error of the service: a bug) | INTERNAL | logged with its traceback            |

Advice (``Hint``) is worded with the API's own field names. Reasons and metadata keys: ``tokend_api.wire``.

    >>> from tokend.service.errors import ServiceUnavailable
    >>> status, is_bug = to_rpc_status(ServiceUnavailable("models are still loading"))
    >>> status.code, is_bug   # 14 = UNAVAILABLE
    (14, False)
"""

from __future__ import annotations

import grpc
from google.rpc import code_pb2, status_pb2
from tokend_api.status_details import build_status

from tokend.service.errors import ErrorKind, Failure, Hint, describe

__all__ = ["to_rpc_status", "code_of"]

_CODES = {
    ErrorKind.INVALID_INPUT: code_pb2.INVALID_ARGUMENT,
    ErrorKind.NOT_FOUND: code_pb2.NOT_FOUND,
    ErrorKind.LIMIT_EXCEEDED: code_pb2.RESOURCE_EXHAUSTED,
    ErrorKind.UNAVAILABLE: code_pb2.UNAVAILABLE,
    ErrorKind.MODEL_BROKEN: code_pb2.FAILED_PRECONDITION,
    ErrorKind.DEADLINE_EXPIRED: code_pb2.DEADLINE_EXCEEDED,
    ErrorKind.CANCELLED: code_pb2.CANCELLED,
    ErrorKind.UNSUPPORTED: code_pb2.FAILED_PRECONDITION,
}
_HINTS = {
    Hint.ALLOW_SPECIAL_TOKEN: (
        "to encode it as its special id, add it to special_tokens.allowed; to encode it as ordinary text, "
        "leave it out of special_tokens.disallowed (e.g. disallowed mode NONE)"
    ),
    Hint.DECODE_LENIENTLY: "use errors ERRORS_REPLACE, or output OUTPUT_BYTES to get the raw bytes",
}


def to_rpc_status(exc: BaseException) -> tuple[status_pb2.Status, bool]:
    """The google.rpc.Status for ``exc`` and whether it is a bug (INTERNAL: log it with a traceback)."""
    failure = describe(exc)
    if failure is None:
        return status_pb2.Status(
            code=code_pb2.INTERNAL, message=f"internal error ({type(exc).__name__}); it has been logged"
        ), True
    return _status(failure), False


def _status(failure: Failure) -> status_pb2.Status:
    message, description = failure.message, failure.description
    if failure.hint is not None:
        message = f"{message}; {_HINTS[failure.hint]}"
        description = f"{description}; {_HINTS[failure.hint]}" if description else None
    return build_status(
        _CODES[failure.kind], message, field=failure.field, description=description, reason=failure.reason,
        metadata=failure.metadata, quota_subject=failure.limit_name,
    )  # fmt: skip


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The grpc.StatusCode that :func:`to_rpc_status` picks for ``exc``."""
    status, _ = to_rpc_status(exc)
    return _STATUS_CODES[status.code]


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}
