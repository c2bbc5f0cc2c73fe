"""HTTP errors of the playground's JSON API, and the one table that maps domain exceptions to them.

Every error leaves the server as `{"error": {"code": ..., "message": ..., <details>}}` with the status below
(the same classes the gRPC API maps to status codes):

    400 invalid_argument    bad JSON, a disallowed special token (`item`, `token`, `offset`), an unknown
                            token id (`item`, `token_id`), invalid UTF-8 under errors="strict" (`item`, `offset`)
    404 not_found           unknown model, version or alias (`ref`, `available`), unknown path
    405 method_not_allowed  e.g. GET on an endpoint that takes POST
    411 length_required     a POST without Content-Length (chunked bodies are not accepted)
    413 resource_exhausted  a configured limit (`limit`, `setting`)
    500 failed_precondition the model on the registry is broken (format, checksum, version conflict)
    500 internal            anything unexpected (logged with its traceback; the message names no request content)
    503 unavailable         the registry cannot be read right now (retry later)

Not handled here: the mapping of exceptions that are not tokend's own or Python's `UnicodeDecodeError` —
they are internal errors by design, so that a bug never reaches the caller as a 400.
"""

from __future__ import annotations

from typing import Any

from tokend.errors import (
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    ModelFormatError,
    ModelNotFoundError,
    RegistryError,
    UnknownTokenIdError,
    VersionConflictError,
)


class HttpError(Exception):
    """An error response: HTTP status, machine-readable code, a message that says how to fix the call.

    >>> err = HttpError(413, "resource_exhausted", "too many inputs", limit=1024)
    >>> err.body()["error"]["limit"]
    1024
    """

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details  # extra JSON fields: item, token, offset, ref, available, limit, ...

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


def bad_request(message: str, **details: Any) -> HttpError:
    return HttpError(400, "invalid_argument", message, **details)


def too_large(message: str, *, limit: int, setting: str) -> HttpError:
    return HttpError(413, "resource_exhausted", message, limit=limit, setting=setting)


def error_from_exception(exc: BaseException, *, item: int | None = None) -> HttpError:
    """Translate a domain exception into its HTTP error; `item` is the batch index being processed.

    >>> error_from_exception(KeyError("surprise")).body()["error"]["code"]
    'internal'
    """
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, DisallowedSpecialTokenError):
        where = exc.item if exc.item is not None else item
        token = exc.token
        # The engine's message advises Python arguments; this one advises the JSON fields.
        return bad_request(
            f"inputs[{where}] contains the disallowed special token {token!r} at character {exc.offset}; "
            f'send "allowed_special": [{_json_string(token)}] (or "all") to encode it as the special token, or '
            f'"disallowed_special": [] to encode it as ordinary text',
            item=where, token=token, offset=exc.offset,
        )
    if isinstance(exc, UnknownTokenIdError):
        where = exc.item if exc.item is not None else item
        prefix = f"inputs[{where}]: " if exc.item is None and where is not None else ""
        return bad_request(prefix + str(exc), item=where, token_id=exc.token_id)
    if isinstance(exc, UnicodeDecodeError):
        return bad_request(
            f"inputs[{item}] does not decode as UTF-8 at byte offset {exc.start} ({exc.reason}); "
            'send "errors": "replace" to get U+FFFD instead, or "output": "bytes" for the raw bytes',
            item=item, offset=exc.start,
        )
    if isinstance(exc, ModelNotFoundError):
        available = list(exc.available)
        return HttpError(404, "not_found", str(exc), ref=exc.ref, available=available)
    if isinstance(exc, RegistryError):
        return HttpError(503, "unavailable", f"the model registry cannot be read now: {exc}; retry later")
    if isinstance(exc, (ModelFormatError, ChecksumMismatchError, VersionConflictError)):
        # The server's state, not the caller's input (gRPC: FAILED_PRECONDITION); tokend's own message.
        return HttpError(500, "failed_precondition", f"the model on the registry is broken: {exc}")
    return HttpError(500, "internal", f"internal error ({type(exc).__name__}); see the server log")


def _json_string(text: str) -> str:
    import json

    return json.dumps(text)
