"""Turn a failed gRPC call into the matching `tokend_client` exception — the client's one mapping table.

| status              | details the server sends (ErrorInfo reason, metadata)   | raised                         |
|---------------------|---------------------------------------------------------|--------------------------------|
| INVALID_ARGUMENT    | DISALLOWED_SPECIAL_TOKEN_ERROR token, offset, item      | DisallowedSpecialTokenError    |
| INVALID_ARGUMENT    | UNKNOWN_TOKEN_ID_ERROR token_id, item                   | UnknownTokenIdError            |
| INVALID_ARGUMENT    | INVALID_BUDGET_ERROR argument, item                     | InvalidBudgetError             |
| INVALID_ARGUMENT    | CHAT_REQUEST_ERROR field, message_index                 | ChatRequestError               |
| INVALID_ARGUMENT    | CHAT_TEMPLATE_ERROR template_failure, field             | ChatTemplateError              |
| INVALID_ARGUMENT    | anything else                                           | InvalidArgumentError           |
| RESOURCE_EXHAUSTED  | CHAT_TEMPLATE_ERROR template_failure (time/size limit)  | ChatTemplateError (not re-split) |
| FAILED_PRECONDITION | OFFSETS_UNAVAILABLE_ERROR model, position, item         | OffsetsUnavailableError        |
| FAILED_PRECONDITION | CHAT_FORMAT_NOT_SET_ERROR ref                           | ChatFormatNotSetError          |
| NOT_FOUND           | MODEL_NOT_FOUND_ERROR ref, available ("a,b,c")          | ModelNotFoundError             |
| RESOURCE_EXHAUSTED  | REQUEST_LIMIT_EXCEEDED limit_name, limit, actual        | LimitExceededError             |
| UNAVAILABLE         |                                                         | ServiceUnavailableError        |
| DEADLINE_EXCEEDED   |                                                         | DeadlineExceededError          |
| anything else       |                                                         | RemoteError                    |

Item indexes: the server names items relative to the request ("inputs[3]"); a batch the client split
into several requests is reported with the index in the caller's batch (`item_offset` is added), and a
single-text call (`encode(text)`) reports `item=None`, as the in-process engine does.

When details are missing (an older server, a proxy in between) the classes are still right where the code
decides them; only the attributes may be None.

    try:
        response = stub.Encode(request, timeout=5)
    except grpc.RpcError as error:
        raise exception_for(error, ref="cl100k_base", item_offset=0, batch=True) from error
"""

from __future__ import annotations

import re

import grpc
from tokend_api import WORKER_METADATA_KEY, Reason
from tokend_api.status_details import StatusDetails, read_status_details

from ._batching import BatchPlan, Chunk
from ._exceptions import (
    ChatFormatNotSetError,
    ChatRequestError,
    ChatTemplateError,
    DeadlineExceededError,
    DisallowedSpecialTokenError,
    InvalidArgumentError,
    InvalidBudgetError,
    LimitExceededError,
    ModelNotFoundError,
    OffsetsUnavailableError,
    RemoteError,
    ServiceUnavailableError,
    TokendError,
    UnknownTokenIdError,
)

_INPUT_FIELD = re.compile(r"^inputs\[(\d+)\]")
_LIMIT_IN_MESSAGE = re.compile(r"limit of (\d+)\s*\((\w+)\)")


def status_details_of(error: grpc.RpcError) -> StatusDetails:
    """The decoded `google.rpc.Status` of a failed call (empty when it carried none)."""
    trailing = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    return read_status_details(trailing)


def code_and_message(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    return code, message or ""


def reported_limit(details: StatusDetails, message: str) -> tuple[str, int] | None:
    """("max_batch_items" | "max_request_bytes" | …, N) from a RESOURCE_EXHAUSTED answer, if it names one."""
    info = details.error_info.get(Reason.REQUEST_LIMIT_EXCEEDED, {})
    if "limit_name" in info and info.get("limit", "").isdigit():
        return info["limit_name"], int(info["limit"])
    match = _LIMIT_IN_MESSAGE.search(message)
    return (match.group(2), int(match.group(1))) if match else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _item(details: StatusDetails, metadata: dict[str, str], *, item_offset: int, batch: bool) -> int | None:
    if not batch:
        return None
    index = _int_or_none(metadata.get("item"))
    if index is None:
        for violation in details.field_violations:
            match = _INPUT_FIELD.match(violation.field)
            if match:
                index = int(match.group(1))
                break
    return None if index is None else index + item_offset


def _description(details: StatusDetails, message: str) -> str:
    """The error's own words without the field the server put in front ("inputs[3]: ..."): what the
    in-process engine says for a single text."""
    for violation in details.field_violations:
        if violation.description:
            return violation.description
    return message


def exception_for(
    error: grpc.RpcError, *, ref: str | None = None, item_offset: int = 0, batch: bool = False
) -> TokendError:
    """The `TokendError` for a failed call. `ref` is the model reference the call named."""
    code, message = code_and_message(error)
    details = status_details_of(error)
    keys = {"code": code, "status_message": message}
    chat = _chat_error(details, message, keys)
    if chat is not None:
        return chat
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        special = details.error_info.get(Reason.DISALLOWED_SPECIAL_TOKEN_ERROR)
        if special is not None and "token" in special:
            return DisallowedSpecialTokenError(
                special["token"],
                offset=_int_or_none(special.get("offset")),
                item=_item(details, special, item_offset=item_offset, batch=batch),
                **keys,
            )
        unknown = details.error_info.get(Reason.UNKNOWN_TOKEN_ID_ERROR)
        if unknown is not None:
            return UnknownTokenIdError(
                _int_or_none(unknown.get("token_id")),
                item=_item(details, unknown, item_offset=item_offset, batch=batch),
                **keys,
            )
        budget = details.error_info.get(Reason.INVALID_BUDGET_ERROR)
        if budget is not None and "argument" in budget:
            return InvalidBudgetError(
                budget["argument"],
                _description(details, message),
                item=_item(details, budget, item_offset=item_offset, batch=batch),
                **keys,
            )
        violations = [(v.field, v.description) for v in details.field_violations]
        return InvalidArgumentError(f"the server rejected the request: {message}", field_violations=violations, **keys)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        unspelled = details.error_info.get(Reason.OFFSETS_UNAVAILABLE_ERROR)
        if unspelled is not None:
            return OffsetsUnavailableError(
                unspelled.get("model", ref or ""),
                _int_or_none(unspelled.get("position")),
                item=_item(details, unspelled, item_offset=item_offset, batch=batch),
                message=_description(details, message),
                **keys,
            )
    if code == grpc.StatusCode.NOT_FOUND:
        info = details.error_info.get(Reason.MODEL_NOT_FOUND_ERROR, {})
        available = [name for name in info.get("available", "").split(",") if name]
        return ModelNotFoundError(info.get("ref") or ref or "", available=available, message=message or None, **keys)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        limit = reported_limit(details, message)
        return LimitExceededError(
            f"over a server limit: {message}", limit=limit[1] if limit else None, **keys
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServiceUnavailableError(
            f"no tokend server answered (after retries): {message}; check the target and that the server is "
            "SERVING, or raise retries=/timeout=",
            **keys,
        )
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(
            f"the call's deadline expired: {message}; raise timeout= or send smaller batches", **keys
        )
    return RemoteError(f"tokend answered {code.name}: {message}", **keys)


def _chat_error(details: StatusDetails, message: str, keys: dict) -> TokendError | None:
    """The chat classes, whatever the status code (a template's limits come as RESOURCE_EXHAUSTED)."""
    unset = details.error_info.get(Reason.CHAT_FORMAT_NOT_SET_ERROR)
    if unset is not None:
        return ChatFormatNotSetError(unset.get("ref", ""), message=message or None, **keys)
    for reason in (Reason.CHAT_TEMPLATE_ERROR, Reason.CHAT_REQUEST_ERROR):
        info = details.error_info.get(reason)
        if info is None:
            continue
        violations = [(v.field, v.description) for v in details.field_violations]
        # The violation's description is the problem alone; the field inside the conversation is the
        # one a local call names (the server's adds "conversations[i]." in front).
        problem = violations[0][1] if violations else message
        fields = {"field": info.get("field"), "message_index": _int_or_none(info.get("message_index")),
                  "field_violations": violations, **keys}  # fmt: skip
        if reason is Reason.CHAT_TEMPLATE_ERROR:
            return ChatTemplateError(problem, reason=info.get("template_failure", "failed"), **fields)
        return ChatRequestError(problem, **fields)
    return None


def _not_splittable(error: grpc.RpcError) -> bool:
    """RESOURCE_EXHAUSTED for something a smaller request does not fix (a chat template's limits)."""
    return Reason.CHAT_TEMPLATE_ERROR in status_details_of(error).error_info


def lost_its_server(error: grpc.RpcError) -> bool:
    """UNAVAILABLE after a server worker had started answering (it sent `tokend-worker`): the server
    died or began draining mid-call. gRPC's own retries never cover this case (a call counts as
    committed once response headers arrived), but every tokend RPC is a pure function of its request,
    so sending it again, to another connection, is safe."""
    code, _ = code_and_message(error)
    if code != grpc.StatusCode.UNAVAILABLE:
        return False
    try:
        metadata = error.initial_metadata() or ()
    except Exception:
        return False
    return any(key == WORKER_METADATA_KEY for key, _ in metadata)


def raise_or_requeue(
    plan: BatchPlan, chunk: Chunk, error: grpc.RpcError, *, ref: str, batch_call: bool, resend_budget: int
) -> None:
    """A request of a batched call failed: re-queue it in smaller parts if the server found it too large
    (RESOURCE_EXHAUSTED) and it can be split, or whole if its server went away mid-call (see
    `lost_its_server`); otherwise raise the mapped exception."""
    code, message = code_and_message(error)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _not_splittable(error):
        plan.abandon(chunk)
    elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if plan.too_large(chunk, reported_limit(status_details_of(error), message)):
            return
    elif lost_its_server(error):
        if plan.resend(chunk, resend_budget):
            return
    else:
        plan.abandon(chunk)
    mapped = exception_for(error, ref=ref, item_offset=chunk.start, batch=batch_call)
    if isinstance(mapped, LimitExceededError) and batch_call and len(chunk) == 1:
        mapped.item = chunk.start
    raise mapped from error
