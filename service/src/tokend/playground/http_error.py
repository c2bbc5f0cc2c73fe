"""HTTP errors of the playground's JSON API, and its one table from service error kinds to HTTP statuses.

Every error leaves the server as `{"error": {"code": ..., "message": ..., <details>}}` with the status below
(the kinds are the service layer's, ``tokend.service.errors``; the gRPC front-end maps the same kinds):

    400 invalid_argument    bad JSON, a disallowed special token (`item`, `token`, `offset`), an unknown
                            token id (`item`, `token_id`), invalid UTF-8 under errors="strict" (`item`, `offset`),
                            a token budget out of range or one no cut of the text meets (`argument`, `item`),
                            a chat message or tool the format refuses or a template that raises (`field`,
                            `message_index`, `item`)
    404 not_found           unknown model, version or alias (`ref`, `available`), unknown path
    405 method_not_allowed  e.g. GET on an endpoint that takes POST
    408 deadline_exceeded   a large body that did not arrive in time (large_bodies.py)
    411 length_required     a POST without Content-Length (chunked bodies are not accepted)
    413 resource_exhausted  a configured limit (`limit`, `setting`), a chat template's time or size limit
    422 failed_precondition the model version cannot do this: its tokens do not spell the text, so it has no
                            offsets, cut points or chunks in it (`item`, `model`, `position`); or it has no
                            chat format (`ref`)
    500 failed_precondition the model on the registry is broken (format, checksum, version conflict)
    500 internal            anything unexpected (logged with its traceback; the message names no request content)
    503 unavailable         the registry cannot be read right now, or the places for large bodies are taken and
                            16 wait already (retry later)
    504 deadline_exceeded   (kept for completeness: the page's calls carry no deadline)
"""

from __future__ import annotations

import json
from typing import Any

from tokend.service.errors import ECHO_CHARS, ErrorKind, Failure, Hint, describe, echo

__all__ = ["HttpError", "bad_request", "error_from_exception", "quoted_value"]

_JSON_KINDS = {list: "a JSON array", dict: "a JSON object"}


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


_STATUSES = {
    ErrorKind.INVALID_INPUT: (400, "invalid_argument"),
    ErrorKind.NOT_FOUND: (404, "not_found"),
    ErrorKind.LIMIT_EXCEEDED: (413, "resource_exhausted"),
    ErrorKind.UNAVAILABLE: (503, "unavailable"),
    ErrorKind.MODEL_BROKEN: (500, "failed_precondition"),
    ErrorKind.DEADLINE_EXPIRED: (504, "deadline_exceeded"),
    ErrorKind.CANCELLED: (400, "cancelled"),
    ErrorKind.UNSUPPORTED: (422, "failed_precondition"),
}


def quoted_value(value: Any) -> str:
    """A request's JSON value as an error message quotes it: a string cut as ``echo`` cuts it, a number as
    written, an array or object by its kind only (its text could be most of a 48 MB body).

    >>> quoted_value("left"), quoted_value(1.5), quoted_value([1, 2])
    ("'left'", '1.5', 'a JSON array')
    >>> len(quoted_value("x" * 40_000_000)) < 160
    True
    """
    if isinstance(value, str):
        return repr(echo(value))
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)[:ECHO_CHARS]
    return _JSON_KINDS.get(type(value), type(value).__name__)


def _worded(failure: Failure) -> str:
    """The message in the page's words: its fields are the JSON API's, its offsets are characters."""
    if failure.hint is Hint.ALLOW_SPECIAL_TOKEN:
        token = failure.metadata.get("token", "")
        return (
            f"{failure.field} contains the disallowed special token {token!r} at character "
            f'{failure.metadata.get("offset")}; send "allowed_special": [{json.dumps(token)}] (or "all") to encode '
            'it as the special token, or "disallowed_special": [] to encode it as ordinary text'
        )
    if failure.hint is Hint.DECODE_LENIENTLY:
        return (
            f'{failure.message}; send "errors": "replace" to get U+FFFD instead, or "output": "bytes" for the raw bytes'
        )
    return failure.message


def error_from_exception(exc: BaseException) -> HttpError:
    """Translate an exception into its HTTP error.

    >>> error_from_exception(KeyError("surprise")).body()["error"]["code"]
    'internal'
    """
    if isinstance(exc, HttpError):
        return exc
    failure = describe(exc)
    if failure is None:
        return HttpError(500, "internal", f"internal error ({type(exc).__name__}); see the server log")
    status, code = _STATUSES[failure.kind]
    message = _worded(failure)
    if failure.kind is ErrorKind.LIMIT_EXCEEDED:
        details = {"limit": failure.metadata.get("limit"), "setting": failure.limit_name}
    else:
        details = dict(failure.metadata)
    return HttpError(status, code, message, **details)
