"""Checked fields of the registry's JSON documents (manifests and the chat formats inside them).

The registry's records are frozen dataclasses whose `__post_init__` checks every field with these helpers;
a bad value raises `FieldError`, whose message starts with the field's path, so the caller can say which
file and field is wrong:

    >>> check_int(0, "version", minimum=1)
    Traceback (most recent call last):
    tokend.registry.document_fields.FieldError: version: must be an integer >= 1, got 0
    >>> from_document(dict, {"a": 1, "b": 2}, known=("a",), required=("a",), where="payload")
    Traceback (most recent call last):
    tokend.registry.document_fields.FieldError: payload.b: unexpected field (known: a)

Plain checks instead of a validation library: reading a manifest is on the way to every first encode
(`tokend.get_encoding`), and importing one cost more than the rest of the start-up together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar

__all__ = [
    "FieldError",
    "check_choice",
    "check_datetime",
    "check_int",
    "check_json_object",
    "check_str",
    "from_document",
    "json_value",
    "nested",
]

T = TypeVar("T")


class FieldError(ValueError):
    """A field of a registry document is missing, unknown or has a bad value (the message names it)."""


def _fail(where: str, message: str) -> FieldError:
    return FieldError(f"{where}: {message}" if where else message)


def check_int(value: Any, where: str, *, minimum: int | None = None, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise _fail(where, f"must be an integer{bound}, got {value!r}")
    return value


def check_str(value: Any, where: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _fail(where, f"must be a string, got {type(value).__name__}")
    return value


def check_choice(value: Any, where: str, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _fail(where, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_json_object(value: Any, where: str, *, check_item: Callable[[str, Any], None] | None = None) -> dict[str, Any]:
    """A JSON object (str keys), copied; `check_item(key, value)` may raise FieldError/ValueError per entry."""
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise _fail(where, f"must be an object with string keys, got {type(value).__name__}")
    if check_item is not None:
        for key, item in value.items():
            try:
                check_item(key, item)
            except ValueError as error:
                raise _fail(f"{where}.{key}", str(error)) from None
    return dict(value)


def check_datetime(value: Any, where: str) -> datetime:
    """A datetime, or its ISO 8601 text ("2026-01-01T00:00:00Z")."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise _fail(where, f"must be an ISO 8601 date and time, e.g. 2026-01-01T00:00:00Z, got {value!r}")


def nested(cls: Callable[..., T], value: Any, where: str, *, optional: bool = False) -> T | None:
    """`value` as a `cls` record: one already, or the JSON object of one (checked via from_document)."""
    if value is None and optional:
        return None
    if isinstance(value, cls):  # type: ignore[arg-type]
        return value
    if not isinstance(value, Mapping):
        raise _fail(where, f"must be an object, got {type(value).__name__}")
    return cls.from_document(value, where=where)  # type: ignore[attr-defined]


def from_document(
    cls: Callable[..., T], document: Any, *, known: Collection[str], required: Collection[str], where: str = "",
    extra: bool = False,
) -> T:
    """`cls(**document)` once its keys are checked: every required one present, no unknown one (unless
    `extra`); a value the record refuses (FieldError/ValueError) gets `where` in front of its field's path."""
    if not isinstance(document, Mapping):
        raise _fail(where, f"must be an object, got {type(document).__name__}")
    prefix = f"{where}." if where else ""
    for key in required:
        if key not in document:
            raise _fail(f"{prefix}{key}", "field required")
    if not extra:
        for key in document:
            if key not in known:
                raise _fail(f"{prefix}{key}", f"unexpected field (known: {', '.join(known)})")
    try:
        return cls(**document)
    except FieldError as error:
        raise FieldError(f"{prefix}{error}") from None


def json_value(value: Any) -> Any:
    """`value` as JSON data: records by their `to_document()`, datetimes as ISO 8601 ("...Z" for UTC)."""
    if hasattr(value, "to_document"):
        return value.to_document()
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, Mapping):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return value
