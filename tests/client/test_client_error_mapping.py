"""Status codes and rich details → client exceptions, on statuses built by the server's own mapping.

`tokend.server.status_mapping.to_rpc_status` is the one place the server turns exceptions into
`google.rpc.Status`; feeding its output to the client's mapping checks both ends of the contract without
a network. (The same paths run end to end against real servers in the other client tests.)
"""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2

import tokend_client
from tokend import errors as engine_errors
from tokend.service import errors as request_errors
from tokend.server.status_mapping import to_rpc_status
from tokend_client._error_mapping import exception_for, lost_its_server, reported_limit, status_details_of
from tokend_api.status_details import parse_status_details

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class FailedCall(grpc.RpcError):
    """What grpc raises for a failed unary call, carrying a status and its trailers."""

    def __init__(self, status: status_pb2.Status, *, initial=(), with_details: bool = True) -> None:
        self._status = status
        self._initial = tuple(initial)
        self._trailing = (("grpc-status-details-bin", status.SerializeToString()),) if with_details else ()

    def code(self):
        return _CODES[self._status.code]

    def details(self):
        return self._status.message

    def trailing_metadata(self):
        return self._trailing

    def initial_metadata(self):
        return self._initial


def _failed(exc: BaseException, **kwargs) -> FailedCall:
    status, _ = to_rpc_status(exc)
    return FailedCall(status, **kwargs)


def test_disallowed_special_token_in_a_batch_item():
    cause = engine_errors.DisallowedSpecialTokenError("<|endoftext|>", offset=5)
    error = exception_for(
        _failed(request_errors.BatchItemError("inputs[3]", 3, cause)), ref="m@1", item_offset=100, batch=True
    )
    assert type(error) is tokend_client.DisallowedSpecialTokenError and isinstance(error, ValueError)
    assert (error.token, error.offset, error.item) == ("<|endoftext|>", 5, 103)  # index in the caller's batch
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "allowed_special" in str(error)  # says how to fix the call


def test_a_single_text_call_reports_no_item():
    cause = engine_errors.DisallowedSpecialTokenError("<|fim_prefix|>", offset=0)
    error = exception_for(_failed(request_errors.BatchItemError("inputs[0]", 0, cause)), batch=False)
    assert (error.token, error.offset, error.item) == ("<|fim_prefix|>", 0, None)


def test_unknown_token_id():
    cause = engine_errors.UnknownTokenIdError(100256)
    error = exception_for(_failed(request_errors.BatchItemError("inputs[1]", 1, cause)), item_offset=10, batch=True)
    assert type(error) is tokend_client.UnknownTokenIdError and isinstance(error, KeyError)
    assert (error.token_id, error.item) == (100256, 11)
    assert "100256" in str(error) and not str(error).startswith("'")  # not KeyError's quoted repr


def test_model_not_found_lists_what_exists():
    cause = engine_errors.ModelNotFoundError("nope@3", available=["cl100k_base@1", "o200k_base@1"])
    error = exception_for(_failed(cause), ref="nope@3")
    assert type(error) is tokend_client.ModelNotFoundError and isinstance(error, ValueError)
    assert error.ref == "nope@3"
    assert error.available == ["cl100k_base@1", "o200k_base@1"]
    assert error.code == grpc.StatusCode.NOT_FOUND


def test_other_invalid_arguments_keep_the_field_violations():
    cause = request_errors.InvalidRequest("special_tokens.allowed.tokens", "tokens are listed but mode is MODE_ALL")
    error = exception_for(_failed(cause))
    assert type(error) is tokend_client.InvalidArgumentError and isinstance(error, ValueError)
    assert error.field_violations == [("special_tokens.allowed.tokens", "tokens are listed but mode is MODE_ALL")]


def test_limits_are_reported_from_details_or_from_the_message():
    cause = request_errors.RequestLimitExceeded(
        "max_batch_items", 1024, 2000, unit="batch items", hint="split the batch into several requests"
    )
    failed = _failed(cause)
    assert reported_limit(status_details_of(failed), failed.details()) == ("max_batch_items", 1024)
    without_details = _failed(cause, with_details=False)
    assert reported_limit(status_details_of(without_details), without_details.details()) == ("max_batch_items", 1024)
    # gRPC's own message-size refusal names no tokend limit
    grpc_own = FailedCall(
        status_pb2.Status(code=code_pb2.RESOURCE_EXHAUSTED, message="Received message larger than max (5 vs. 4)")
    )
    assert reported_limit(status_details_of(grpc_own), grpc_own.details()) is None
    error = exception_for(failed)
    assert type(error) is tokend_client.LimitExceededError and error.limit == 1024


@pytest.mark.parametrize(
    ("code", "expected", "base"),
    [
        (code_pb2.UNAVAILABLE, tokend_client.ServiceUnavailableError, ConnectionError),
        (code_pb2.DEADLINE_EXCEEDED, tokend_client.DeadlineExceededError, TimeoutError),
        (code_pb2.INTERNAL, tokend_client.RemoteError, tokend_client.TokendError),
        (code_pb2.FAILED_PRECONDITION, tokend_client.RemoteError, tokend_client.TokendError),
        (code_pb2.UNAUTHENTICATED, tokend_client.RemoteError, tokend_client.TokendError),
    ],
)
def test_plain_codes(code, expected, base):
    error = exception_for(FailedCall(status_pb2.Status(code=code, message="why"), with_details=False))
    assert type(error) is expected and isinstance(error, base)
    assert error.status_message == "why" and error.code == _CODES[code]


def test_unavailable_is_resent_only_when_a_worker_had_answered():
    draining = _failed(request_errors.ServiceUnavailable("shutting down"), initial=[("tokend-worker", "4711")])
    assert lost_its_server(draining)
    never_reached = _failed(request_errors.ServiceUnavailable("connect failed"))
    assert not lost_its_server(never_reached)  # gRPC's own retries already covered it
    other = _failed(request_errors.InvalidRequest("model", "empty"), initial=[("tokend-worker", "4711")])
    assert not lost_its_server(other)


def test_status_details_tolerate_garbage_and_unknown_types():
    assert parse_status_details(b"\xff\x00garbage").field_violations == []
    status = status_pb2.Status(code=3, message="m")
    status.details.add().Pack(error_details_pb2.RetryInfo())
    status.details.add().Pack(
        error_details_pb2.BadRequest(field_violations=[{"field": "inputs[2]", "description": "d", "reason": "R"}])
    )
    details = parse_status_details(status.SerializeToString())
    assert details.other_types == ["google.rpc.RetryInfo"]
    assert [(v.field, v.description, v.reason) for v in details.field_violations] == [("inputs[2]", "d", "R")]


def test_a_budget_no_cut_can_meet_is_an_invalid_budget_error_naming_argument_and_item():
    cause = engine_errors.InvalidBudgetError("max_tokens", "max_tokens=2 is too small for this text: ...")
    error = exception_for(_failed(request_errors.BatchItemError("inputs[1]", 1, cause)), item_offset=4, batch=True)
    assert type(error) is tokend_client.InvalidBudgetError and isinstance(error, ValueError)
    assert (error.argument, error.item) == ("max_tokens", 5)
    assert str(error) == "max_tokens=2 is too small for this text: ..."  # the engine's words, without "inputs[1]: "
    argument = exception_for(_failed(engine_errors.InvalidBudgetError("overlap", "overlap must be ...")))
    assert (argument.argument, argument.item) == ("overlap", None)


def test_a_model_without_offsets_is_an_offsets_unavailable_error():
    cause = engine_errors.OffsetsUnavailableError("t5-small", 7)
    error = exception_for(_failed(request_errors.BatchItemError("inputs[0]", 0, cause)), batch=False)
    assert type(error) is tokend_client.OffsetsUnavailableError and isinstance(error, ValueError)
    assert (error.model, error.position, error.item) == ("t5-small", 7, None)
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION


def test_the_chunk_limit_is_a_limit_and_re_splits_a_batch_without_lowering_the_clients_limits():
    from tokend_client._batching import BatchPlan, Chunk, RequestLimits

    cause = request_errors.RequestLimitExceeded("max_chunks", 100_000, 100_001, unit="chunks at least", hint="...")
    error = exception_for(_failed(cause))
    assert type(error) is tokend_client.LimitExceededError and error.limit == 100_000
    limits = RequestLimits(max_items=1024, max_bytes=8 << 20)
    plan = BatchPlan([10] * 8, limits)
    chunk = plan.take()
    assert plan.too_large(chunk, ("max_chunks", 100_000))  # halved and queued again
    assert (limits.max_items, limits.max_bytes) == (1024, 8 << 20)
    assert [plan.take(), plan.take()] == [Chunk(0, 4), Chunk(4, 8)]
