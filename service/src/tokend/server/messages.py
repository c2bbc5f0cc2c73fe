"""Request and response message parts every Tokenizer RPC shares: inputs, the special-token policy, enum
fields, the model version. Each turns a wire value into the service's domain value (or back), and a bad
value into InvalidRequest naming the field.

    policy(request.special_tokens)          # SpecialTokenPolicy
    enum_value(request.errors, {...}, "errors", pb.DecodeRequest.Errors)
"""

from __future__ import annotations

from collections.abc import Iterable

from tokend_api.policy_message import PolicyMessageError, from_message
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.service import InvalidRequest, SpecialTokenPolicy
from tokend.service.special_policy import DEFAULT_POLICY, check_listed_count
from tokend.service.results import ModelVersion

__all__ = ["DECODE_ERRORS", "inputs", "policy", "enum_value", "model_version"]

DECODE_ERRORS = {pb.DecodeRequest.ERRORS_UNSPECIFIED: "replace", pb.DecodeRequest.ERRORS_REPLACE: "replace",
                 pb.DecodeRequest.ERRORS_STRICT: "strict"}  # fmt: skip


def inputs(inputs: Iterable[pb.Input]) -> list[str | bytes]:
    return [item.data if item.WhichOneof("content") == "data" else item.text for item in inputs]


def policy(message: pb.SpecialTokenPolicy) -> SpecialTokenPolicy:
    if not message.ListFields():  # nothing set (most requests): tiktoken's defaults, without reading each set
        return DEFAULT_POLICY
    # The lists' lengths first: protobuf makes a listed string only when it is read.
    check_listed_count(len(message.allowed.tokens), "special_tokens.allowed.tokens")
    check_listed_count(len(message.disallowed.tokens), "special_tokens.disallowed.tokens")
    try:
        allowed, disallowed = from_message(message)
    except PolicyMessageError as exc:
        raise InvalidRequest(exc.field, exc.description) from None
    return SpecialTokenPolicy(allowed, disallowed)


def enum_value(value: int, names: dict[int, str], field: str, enum: object) -> str:
    try:
        return names[value]
    except KeyError:
        known = ", ".join(name for name in enum.keys() if not name.endswith("_UNSPECIFIED"))  # type: ignore[attr-defined]
        raise InvalidRequest(field, f"unknown value {value}; use one of {known}") from None


def model_version(model: ModelVersion) -> pb.ModelVersion:
    return pb.ModelVersion(name=model.name, version=model.version)
