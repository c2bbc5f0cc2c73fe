"""Read the rich error details (`google.rpc.Status`) a tokend server attaches to a failed call.

The server sends a serialized `google.rpc.Status` in the `grpc-status-details-bin` trailer; its
`details` hold `google.rpc.BadRequest` (which batch item, which special token, which id),
`google.rpc.ErrorInfo` (machine-readable reason and metadata), `google.rpc.QuotaFailure` and
`google.rpc.ResourceInfo`. The client depends on grpcio and protobuf only, so instead of
`googleapis-common-protos` it declares the few message types it reads in a *private* descriptor pool
(field numbers copied from google/rpc/status.proto and error_details.proto). A private pool cannot clash
with the real `google.rpc` modules when both are imported in one process.

    details = read_status_details(rpc_error)
    for violation in details.field_violations:
        print(violation.field, violation.description)

Not handled: detail types other than the four above are ignored (kept as type URLs in `other_types`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

_STATUS_TRAILER = "grpc-status-details-bin"

_F = descriptor_pb2.FieldDescriptorProto


def _message(name: str, fields: list[tuple[str, int, int, int, str | None]]) -> descriptor_pb2.DescriptorProto:
    message = descriptor_pb2.DescriptorProto(name=name)
    for field_name, number, label, kind, type_name in fields:
        added = message.field.add(name=field_name, number=number, label=label, type=kind)
        if type_name:  # only message fields name a type; protobuf rejects an empty one
            added.type_name = type_name
    return message


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)

    opt, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    string, int32, msg = _F.TYPE_STRING, _F.TYPE_INT32, _F.TYPE_MESSAGE
    rpc = descriptor_pb2.FileDescriptorProto(
        name="tokend_client/google_rpc_subset.proto",
        package="google.rpc",
        syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    rpc.message_type.append(
        _message(
            "Status",
            [("code", 1, opt, int32, None), ("message", 2, opt, string, None),
             ("details", 3, rep, msg, ".google.protobuf.Any")],
        )
    )
    bad_request = _message("BadRequest", [("field_violations", 1, rep, msg, ".google.rpc.BadRequest.FieldViolation")])
    bad_request.nested_type.append(
        _message(
            "FieldViolation",
            [("field", 1, opt, string, None), ("description", 2, opt, string, None),
             ("reason", 3, opt, string, None)],
        )
    )
    rpc.message_type.append(bad_request)
    error_info = _message(
        "ErrorInfo",
        [("reason", 1, opt, string, None), ("domain", 2, opt, string, None),
         ("metadata", 3, rep, msg, ".google.rpc.ErrorInfo.MetadataEntry")],
    )
    entry = _message("MetadataEntry", [("key", 1, opt, string, None), ("value", 2, opt, string, None)])
    entry.options.map_entry = True
    error_info.nested_type.append(entry)
    rpc.message_type.append(error_info)
    quota = _message("QuotaFailure", [("violations", 1, rep, msg, ".google.rpc.QuotaFailure.Violation")])
    quota.nested_type.append(
        _message("Violation", [("subject", 1, opt, string, None), ("description", 2, opt, string, None)])
    )
    rpc.message_type.append(quota)
    rpc.message_type.append(
        _message(
            "ResourceInfo",
            [("resource_type", 1, opt, string, None), ("resource_name", 2, opt, string, None),
             ("owner", 3, opt, string, None), ("description", 4, opt, string, None)],
        )
    )
    pool.Add(rpc)
    return pool


_POOL = _build_pool()


def _class(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(name))


_Status = _class("google.rpc.Status")
_DETAIL_CLASSES = {
    "google.rpc.BadRequest": _class("google.rpc.BadRequest"),
    "google.rpc.ErrorInfo": _class("google.rpc.ErrorInfo"),
    "google.rpc.QuotaFailure": _class("google.rpc.QuotaFailure"),
    "google.rpc.ResourceInfo": _class("google.rpc.ResourceInfo"),
}


@dataclass(frozen=True)
class FieldViolation:
    """One `google.rpc.BadRequest.FieldViolation`: `field` is e.g. `"inputs[3]"`."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class StatusDetails:
    """Everything the client reads from a failed call's `google.rpc.Status` (all empty if none was sent)."""

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


def parse_status_details(serialized: bytes) -> StatusDetails:
    """Decode a serialized `google.rpc.Status`; undecodable bytes give empty details, never an exception.

        parse_status_details(b"")  # -> StatusDetails()
    """
    try:
        status = _Status.FromString(serialized)
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
        if type_name == "google.rpc.BadRequest":
            violations.extend(FieldViolation(v.field, v.description, v.reason) for v in message.field_violations)
        elif type_name == "google.rpc.ErrorInfo":
            error_info.setdefault(message.reason, {}).update(dict(message.metadata))
        elif type_name == "google.rpc.QuotaFailure":
            quota.extend((v.subject, v.description) for v in message.violations)
        else:
            resources.append((message.resource_type, message.resource_name, message.description))
    return StatusDetails(status.message, violations, error_info, quota, resources, other)


def read_status_details(trailing_metadata: Any) -> StatusDetails:
    """Find and decode the `grpc-status-details-bin` entry of a call's trailing metadata (or None)."""
    for key, value in trailing_metadata or ():
        if key == _STATUS_TRAILER and isinstance(value, bytes):
            return parse_status_details(value)
    return StatusDetails()

