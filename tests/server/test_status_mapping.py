"""The one table from exceptions to status codes, checked entry by entry (no server needed)."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2

from tokend.errors import (
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    ModelFormatError,
    ModelNotFoundError,
    RegistryError,
    UnknownTokenIdError,
)
from tokend.service.errors import (
    BatchItemError,
    CallCancelled,
    DeadlineExpired,
    InvalidRequest,
    RequestLimitExceeded,
    ServiceUnavailable,
)
from tokend.server.status_mapping import to_rpc_status


def _unpack(status, message_type):
    found = []
    for packed in status.details:
        if packed.Is(message_type.DESCRIPTOR):
            message = message_type()
            packed.Unpack(message)
            found.append(message)
    return found


@pytest.mark.parametrize(
    "exc,code",
    [
        (BatchItemError("inputs[2]", 2, DisallowedSpecialTokenError("<|endoftext|>", 4)), code_pb2.INVALID_ARGUMENT),
        (BatchItemError("inputs[0]", 0, UnknownTokenIdError(100261)), code_pb2.INVALID_ARGUMENT),
        (BatchItemError("inputs[1]", 1, UnicodeDecodeError("utf-8", b"ok\xe2", 2, 3, "unexpected end of data")), code_pb2.INVALID_ARGUMENT),
        (InvalidRequest("model", "no model given"), code_pb2.INVALID_ARGUMENT),
        (ModelNotFoundError("gpt-9", ["cl100k_base", "o200k_base"]), code_pb2.NOT_FOUND),
        (RequestLimitExceeded("max_batch_items", 4, 5, unit="batch items", hint="split"), code_pb2.RESOURCE_EXHAUSTED),
        (ServiceUnavailable("loading"), code_pb2.UNAVAILABLE),
        (RegistryError("unreachable"), code_pb2.UNAVAILABLE),
        (DeadlineExpired(3, 10), code_pb2.DEADLINE_EXCEEDED),
        (CallCancelled("gone"), code_pb2.CANCELLED),
        (ModelFormatError("bad manifest"), code_pb2.FAILED_PRECONDITION),
        (ChecksumMismatchError(expected="a" * 64, actual="b" * 64, what="x@1"), code_pb2.FAILED_PRECONDITION),
    ],
)
def test_known_exceptions_map_to_their_code_and_are_not_bugs(exc, code):
    status, is_bug = to_rpc_status(exc)
    assert status.code == code and not is_bug


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyError("x"), ValueError("y"), BatchItemError("inputs[0]", 0, ZeroDivisionError())])
def test_anything_else_is_internal_and_a_bug(exc):
    status, is_bug = to_rpc_status(exc)
    assert status.code == code_pb2.INTERNAL and is_bug
    assert "boom" not in status.message  # internals are logged, not sent


def test_disallowed_special_token_details():
    status, _ = to_rpc_status(BatchItemError("inputs[2]", 2, DisallowedSpecialTokenError("<|endoftext|>", 4)))
    (bad,) = _unpack(status, error_details_pb2.BadRequest)
    assert [(v.field) for v in bad.field_violations] == ["inputs[2]"]
    assert "'<|endoftext|>' at character offset 4" in bad.field_violations[0].description
    (info,) = _unpack(status, error_details_pb2.ErrorInfo)
    assert info.reason == "DISALLOWED_SPECIAL_TOKEN_ERROR" and info.domain == "tokend.dev"
    assert dict(info.metadata) == {"token": "<|endoftext|>", "offset": "4", "item": "2"}


def test_engine_item_index_is_used_when_not_wrapped():
    status, _ = to_rpc_status(DisallowedSpecialTokenError("<|fim_prefix|>", 0, item=5))
    (bad,) = _unpack(status, error_details_pb2.BadRequest)
    assert bad.field_violations[0].field == "inputs[5]"


def test_not_found_lists_what_exists():
    status, _ = to_rpc_status(ModelNotFoundError("gpt-9", ["cl100k_base", "o200k_base"]))
    assert "cl100k_base" in status.message and "o200k_base" in status.message
    (info,) = _unpack(status, error_details_pb2.ErrorInfo)
    assert dict(info.metadata) == {"ref": "gpt-9", "available": "cl100k_base,o200k_base"}


def test_limit_states_the_limit():
    status, _ = to_rpc_status(RequestLimitExceeded("max_request_bytes", 100, 101, unit="input bytes", hint="send less"))
    assert "101 input bytes, over the limit of 100 (max_request_bytes); send less" in status.message
    (quota,) = _unpack(status, error_details_pb2.QuotaFailure)
    assert quota.violations[0].subject == "max_request_bytes"
