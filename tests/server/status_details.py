"""Read the google.rpc details of a failed call (test helper for the server tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class Details:
    violations: dict[str, str] = field(default_factory=dict)  # field -> description
    error_info: dict[str, dict[str, str]] = field(default_factory=dict)  # reason -> metadata
    quota: list[tuple[str, str]] = field(default_factory=list)


def details_of(error: grpc.RpcError) -> Details:
    status = rpc_status.from_call(error)
    found = Details()
    if status is None:
        return found
    assert status.code == error.code().value[0] and status.message == error.details()
    for packed in status.details:
        if packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            found.violations.update({v.field: v.description for v in bad.field_violations})
        elif packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            assert info.domain == "tokend.dev"
            found.error_info[info.reason] = dict(info.metadata)
        elif packed.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
            quota = error_details_pb2.QuotaFailure()
            packed.Unpack(quota)
            found.quota.extend((v.subject, v.description) for v in quota.violations)
    return found
