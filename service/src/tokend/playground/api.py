"""The playground's JSON API: request dict → service call → response dict. No HTTP in here.

Same operations and semantics as the gRPC API (both are ``tokend.service``), spelled the way tiktoken
spells them:

    encode  {"model": "cl100k_base@1", "inputs": ["text", {"data": "<base64>"}],
             "allowed_special": [] | [...] | "all", "disallowed_special": "all" | [...] | [], "detail": false}
            → {"model": {"name", "version"}, "results": [{"ids": [...], "tokens": [...]?}], "total_tokens"}
    count   same request without "detail" → {"model", "counts": [...], "total"}
    decode  {"model", "inputs": [[ids], ...], "errors": "replace" | "strict", "output": "text" | "bytes"}
            → {"model", "results": [{"text": ...} | {"data": "<base64>"}]}
    models  → {"models": [{"name", "versions", "latest_version", "aliases"}]}
    truncate, chunk, and encode's "offsets": true — token budgets (budget_api.py)
    model   (one reference) → {"model", "n_vocab", "max_token_value", "special_tokens", "pattern", "eot_token", "sha256",
                               "algorithm", "normalizer" (or null), "bos_token", "eos_token", "unk_token", "pad_token" ({"text", "id"} or null),
                               "chat_format": {"name", "kind", "estimate", "description"} | null}
    encode_chat, count_chat   OpenAI-shaped messages in the model's chat format (chat_api.py)

`"text": "..."` (encode/count) and `"ids": [...]` (decode) are shorthands for a one-item `inputs`. Raw bytes
(`{"data": ...}`) are always encoded as ordinary text, as in the gRPC API. The special-token policy is
tiktoken's: by default nothing is allowed and everything is disallowed, so text containing a special token
is a 400 naming the token, the item and the character offset.

Limits (413): the service's (`max_batch_items`, `max_request_bytes`, the answer's size) plus per-token
`detail` only up to `max_detail_bytes` of input, because it multiplies the response size by ~50. Before a
body is parsed, its size (`max_body_bytes`) and its objects, lists and commas (`max_structure_bytes`,
json_structure.py) are checked by the HTTP handler.

Not handled: streaming, and several models in one request (the page sends one request per model).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tokend.service import RequestLimitExceeded, ServedModels, SpecialTokenPolicy, TokenizerService, WorkAdmission, echo
from tokend.service.limits import Limits, input_bytes
from tokend.service.results import ModelDetails, ModelVersion

from .budget_api import BudgetApi
from .chat_api import ChatApi
from .http_error import bad_request, quoted_value
from .json_structure import largest_structure
from .token_view import describe_tokens


@dataclass(frozen=True)
class PlaygroundLimits(Limits):
    """The service's limits plus the page's own: ``max_detail_bytes`` of input with per-token detail.

    >>> PlaygroundLimits(max_request_bytes=1024).max_body_bytes
    71680
    """

    max_detail_bytes: int = 256 * 1024

    @property
    def max_body_bytes(self) -> int:
        # JSON may spell one input byte as six characters ("\u0000"); the envelope gets 64 KiB on top.
        return 6 * self.max_request_bytes + 64 * 1024

    @property
    def max_structure_bytes(self) -> int:
        """The most a body's objects, lists and commas count (json_structure.py), checked before it is parsed."""
        return largest_structure(max_request_bytes=self.max_request_bytes, max_batch_items=self.max_batch_items)


_ENCODE_FIELDS = frozenset({"model", "inputs", "text", "allowed_special", "disallowed_special", "detail", "offsets"})
_COUNT_FIELDS = _ENCODE_FIELDS - {"detail", "offsets"}
_DECODE_FIELDS = frozenset({"model", "inputs", "ids", "errors", "output"})
# Unknown fields an error names (each cut as echo cuts it); a body may hold a million of them.
_NAMED_FIELDS = 8


class PlaygroundApi(BudgetApi, ChatApi):  # truncate, chunk: budget_api.py; encode_chat, count_chat: chat_api.py
    """The JSON API over a registry; every method takes the parsed JSON body and returns the response dict.

    >>> from tokend.registry import Registry
    >>> api = PlaygroundApi(Registry.open())
    >>> api.count({"model": "cl100k_base", "text": "hello world"})["total"]
    2
    """

    def __init__(
        self, registry: Any, limits: PlaygroundLimits | None = None, admission: WorkAdmission | None = None
    ) -> None:
        self.limits = limits or PlaygroundLimits()
        self.service = TokenizerService(ServedModels(registry), self.limits, admission)

    # -- endpoints ---------------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return {
            "models": [
                {"name": info.name, "versions": list(info.versions), "latest_version": info.latest_version,
                 "aliases": dict(info.aliases)}
                for info in self.service.list_models()
            ]
        }  # fmt: skip

    def model(self, ref: str) -> dict[str, Any]:
        details = self.service.get_model(ref)
        return {
            "model": _model_version(details.model),
            "n_vocab": details.n_vocab,
            "max_token_value": details.max_token_value,
            "special_tokens": dict(details.special_tokens),
            "pattern": details.pattern,
            "eot_token": details.eot_token,  # as the gRPC GetModel: None when the model has no <|endoftext|>
            "sha256": details.sha256,
            # None: encode_chat / count_chat answer 422
            "chat_format": dataclasses.asdict(details.chat_format) if details.chat_format is not None else None,
            "algorithm": details.algorithm,
            "normalizer": details.normalizer,
            # as the gRPC GetModel: {"text", "id"} for each role the model names, None for the others
            **{f"{role}_token": _role_token(details, role) for role in ("bos", "eos", "unk", "pad")},
        }

    def encode(self, body: Any) -> dict[str, Any]:
        request = _object(body, _ENCODE_FIELDS)
        ref = _model_ref(request)
        inputs = _text_inputs(request)
        policy = _special_policy(request)
        detail = _boolean(request, "detail")
        if detail:
            size = input_bytes(inputs)
            if size > self.limits.max_detail_bytes:
                raise RequestLimitExceeded(
                    "max_detail_bytes", self.limits.max_detail_bytes, size, unit="input bytes with \"detail\": true",
                    hint='send less text or ask without "detail"',
                )  # fmt: skip
        if _boolean(request, "offsets"):
            encoded, results = self.token_offsets(ref, inputs, policy)  # budget_api
        else:
            encoded = self.service.encode(ref, inputs, special=policy)
            results = [{"ids": ids} for ids in encoded.ids]
        if detail:
            encoding = self.service.models.load(f"{encoded.model.name}@{encoded.model.version}").encoding
            special_names = {token_id: text for text, token_id in encoding.special_tokens.items()}
            for result in results:
                result["tokens"] = describe_tokens(encoding, result["ids"], special_names)
        return {"model": _model_version(encoded.model), "results": results, "total_tokens": encoded.total_tokens}

    def count(self, body: Any) -> dict[str, Any]:
        request = _object(body, _COUNT_FIELDS)
        counted = self.service.count(_model_ref(request), _text_inputs(request), special=_special_policy(request))
        return {"model": _model_version(counted.model), "counts": counted.counts, "total": counted.total}

    def decode(self, body: Any) -> dict[str, Any]:
        request = _object(body, _DECODE_FIELDS)
        ref = _model_ref(request)
        inputs = _id_inputs(request)
        errors = _choice(request, "errors", ("replace", "strict"))
        output = _choice(request, "output", ("text", "bytes"))
        decoded = self.service.decode(ref, inputs, errors=errors, output=output)  # type: ignore[arg-type]
        if output == "bytes":
            results = [{"data": base64.b64encode(data).decode("ascii")} for data in decoded.results]
        else:
            results = [{"text": text} for text in decoded.results]
        return {"model": _model_version(decoded.model), "results": results}


# -- request parts: JSON shapes (module level: they need no state) -----------------------------------------


def _text_inputs(request: dict[str, Any]) -> list[str | bytes]:
    inputs: list[str | bytes] = []
    for index, item in enumerate(_items(request, "text", "inputs")):
        if isinstance(item, str):
            inputs.append(item)
        elif isinstance(item, dict) and set(item) == {"text"} and isinstance(item["text"], str):
            inputs.append(item["text"])
        elif isinstance(item, dict) and set(item) == {"data"} and isinstance(item["data"], str):
            try:
                inputs.append(base64.b64decode(item["data"], validate=True))
            except (binascii.Error, ValueError) as exc:
                raise bad_request(f"inputs[{index}].data is not valid base64 ({exc})", item=index) from exc
        else:
            raise bad_request(
                f'inputs[{index}] must be a string, {{"text": "..."}} or {{"data": "<base64>"}}', item=index,
            )
    return inputs


def _id_inputs(request: dict[str, Any]) -> list[list[int]]:
    inputs: list[list[int]] = []
    for index, item in enumerate(_items(request, "ids", "inputs")):
        if not isinstance(item, list):
            raise bad_request(f"inputs[{index}] must be a list of token ids", item=index)
        for position, token_id in enumerate(item):
            # bool is an int in Python and JSON true would otherwise decode as token 1
            if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id < 0:
                raise bad_request(
                    f"inputs[{index}][{position}] = {quoted_value(token_id)} is not a token id (a non-negative integer)",
                    item=index,
                )
        inputs.append(item)
    return inputs


def _model_version(model: ModelVersion) -> dict[str, Any]:
    return {"name": model.name, "version": model.version}


def _role_token(details: ModelDetails, role: str) -> dict[str, Any] | None:
    named = details.role_tokens.get(role)
    return None if named is None else {"text": named[0], "id": named[1]}


def _object(body: Any, fields: Iterable[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    accepted = sorted(fields)
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        named = ", ".join(map(echo, unknown[:_NAMED_FIELDS])) + (f" and {len(unknown) - _NAMED_FIELDS} more" if len(unknown) > _NAMED_FIELDS else "")
        raise bad_request(f"unknown field(s) {named}; accepted: {', '.join(accepted)}")
    return body


def _model_ref(request: dict[str, Any]) -> str:
    ref = request.get("model")
    if not isinstance(ref, str) or not ref:
        raise bad_request('"model" is required: "name", "name@version" or "name@alias" (see GET /api/v1/models)')
    return ref


def _items(request: dict[str, Any], single: str, batch: str) -> list[Any]:
    if (single in request) == (batch in request):
        raise bad_request(f'send exactly one of "{single}" (one item) or "{batch}" (a list)')
    if single in request:
        return [request[single]]
    items = request[batch]
    if not isinstance(items, list):
        raise bad_request(f'"{batch}" must be a list')
    return items


def _special_policy(request: dict[str, Any]) -> SpecialTokenPolicy:
    values = {"allowed_special": request.get("allowed_special", []), "disallowed_special": request.get("disallowed_special", "all")}
    for field, value in values.items():
        if not isinstance(value, (str, list)):  # JSON: "all" or a list; the service checks the rest
            raise bad_request(f'"{field}" must be "all" or a list of special-token strings, e.g. ["<|endoftext|>"]')
    return SpecialTokenPolicy.from_arguments(
        values["allowed_special"], values["disallowed_special"],
        allowed_field="allowed_special", disallowed_field="disallowed_special",
    )  # fmt: skip


def _boolean(request: dict[str, Any], field: str) -> bool:
    value = request.get(field, False)
    if not isinstance(value, bool):
        raise bad_request(f'"{field}" must be true or false')
    return value


def _choice(request: dict[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = request.get(field, choices[0])
    if value not in choices:
        raise bad_request(f'"{field}" must be one of {", ".join(map(repr, choices))}, not {quoted_value(value)}')
    return value


__all__ = ["PlaygroundApi", "PlaygroundLimits"]
