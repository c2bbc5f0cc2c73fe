"""The rich error details of a failed tokend call: built by the server, read by the client.

A failed call carries a serialized ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer (gRPC's
convention; ``grpc_status.rpc_status.to_status`` sends it). Its ``details`` hold, depending on the error,
``google.rpc.BadRequest`` (which field or batch item: ``"inputs[3]"``, ``"model"``), ``google.rpc.ErrorInfo``
(domain ``tokend.dev``, a ``Reason`` and its metadata, see ``tokend_api.wire``) and
``google.rpc.QuotaFailure`` (which limit). The message classes are googleapis-common-protos'.

    status = build_status(3, "inputs[1]: ...", field="inputs[1]", description="...",
                          reason=Reason.UNKNOWN_TOKEN_ID_ERROR, metadata={"token_id": 7, "item": 1})
    details = read_status_details(rpc_error.trailing_metadata())   # on the client
    details.error_info["UNKNOWN_TOKEN_ID_ERROR"]                    # {'token_id': '7', 'item': '1'}

Not handled: detail types other than BadRequest, ErrorInfo, QuotaFailure and ResourceInfo are kept as type
names only (``other_types``); a trailer that does not parse gives empty details, never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from tokend_api.wire import ERROR_DOMAIN, STATUS_DETAILS_METADATA_KEY

__all__ = ["FieldViolation", "StatusDetails", "build_status", "parse_status_details", "read_status_details"]


def build_status(
    code: int,
    message: str,
    *,
    field: str | None = None,
    description: str | None = None,
    reason: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    quota_subject: str | None = None,
) -> status_pb2.Status:
    """A ``google.rpc.Status``: BadRequest when ``field`` is given, ErrorInfo when ``reason`` is, QuotaFailure
    when ``quota_subject`` is. Metadata values become strings (lists are joined with commas); None is left out.

    >>> status = build_status(8, "over", quota_subject="max_batch_items")
    >>> status.code, len(status.details)
    (8, 1)
    """
    details: list[Any] = []
    if field is not None:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=description or message)
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if quota_subject is not None:
        violation = error_details_pb2.QuotaFailure.Violation(subject=quota_subject, description=message)
        details.append(error_details_pb2.QuotaFailure(violations=[violation]))
    if reason is not None:
        details.append(
            error_details_pb2.ErrorInfo(
                reason=str(reason), domain=ERROR_DOMAIN, metadata=_string_metadata(metadata or {})
            )
        )
    status = status_pb2.Status(code=code, message=message)
    for detail in details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return status


def _string_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    strings = {}
    for key, value in metadata.items():
        if value is None:
            continue
        strings[key] = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return strings


@dataclass(frozen=True)
class FieldViolation:
    """One ``google.rpc.BadRequest.FieldViolation``: ``field`` is e.g. ``"inputs[3]"``."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class StatusDetails:
    """Everything read from a failed call's ``google.rpc.Status`` (all empty if none was sent)."""

    message: str = ""
    field_violations: list[FieldViolation] = field(default_factory=list)
    # ErrorInfo: reason → metadata (a status may carry several ErrorInfo, one per reason)
    error_info: dict[str, dict[str, str]] = field(default_factory=dict)
    # QuotaFailure violations as (subject, description)
    quota_violations: list[tuple[str, str]] = field(default_factory=list)
    # ResourceInfo as (resource_type, resource_name, description)
    resources: list[tuple[str, str, str]] = field(default_factory=list)
    other_types: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, str]:
        """All ErrorInfo metadata merged into one mapping (later reasons win on clashes)."""
        merged: dict[str, str] = {}
        for values in self.error_info.values():
            merged.update(values)
        return merged


_DETAIL_CLASSES = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        error_details_pb2.BadRequest,
        error_details_pb2.ErrorInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.ResourceInfo,
    )
}


def parse_status_details(serialized: bytes) -> StatusDetails:
    """Decode a serialized ``google.rpc.Status``; bytes that do not parse give empty details.

    >>> parse_status_details(b"\\xff\\x00garbage").field_violations
    []
    """
    try:
        status = status_pb2.Status.FromString(serialized)
    except Exception:  # a malformed trailer must not hide the status code itself
        return StatusDetails()
    violations: list[FieldViolation] = []
    error_info: dict[str, dict[str, str]] = {}
    quota: list[tuple[str, str]] = []
    resources: list[tuple[str, str, str]] = []
    other: list[str] = []
    for detail in status.details:
        type_name = detail.type_url.rsplit("/", 1)[-1]
        cls = _DETAIL_CLASSES.get(type_name)
        if cls is None:
            other.append(type_name)
            continue
        try:
            message = cls.FromString(detail.value)
        except Exception:
            other.append(type_name)
            continue
        if isinstance(message, error_details_pb2.BadRequest):
            violations.extend(FieldViolation(v.field, v.description, v.reason) for v in message.field_violations)
        elif isinstance(message, error_details_pb2.ErrorInfo):
            error_info.setdefault(message.reason, {}).update(dict(message.metadata))
        elif isinstance(message, error_details_pb2.QuotaFailure):
            quota.extend((v.subject, v.description) for v in message.violations)
        else:
            resources.append((message.resource_type, message.resource_name, message.description))
    return StatusDetails(status.message, violations, error_info, quota, resources, other)


def read_status_details(trailing_metadata: Iterable[tuple[str, Any]] | None) -> StatusDetails:
    """Find and decode the ``grpc-status-details-bin`` entry of a call's trailing metadata."""
    for key, value in trailing_metadata or ():
        if key == STATUS_DETAILS_METADATA_KEY and isinstance(value, bytes):
            return parse_status_details(value)
    return StatusDetails()
