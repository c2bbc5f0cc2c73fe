"""The playground's JSON API: request dict → registry/engine call → response dict. No HTTP in here.

Same semantics as the gRPC API (protos/tokend/v1/tokenizer.proto), spelled the way tiktoken spells them:

    encode  {"model": "cl100k_base@1", "inputs": ["text", {"data": "<base64>"}],
             "allowed_special": [] | [...] | "all", "disallowed_special": "all" | [...] | [], "detail": false}
            → {"model": {"name", "version"}, "results": [{"ids": [...], "tokens": [...]?}], "total_tokens"}
    count   same request without "detail" → {"model", "counts": [...], "total"}
    decode  {"model", "inputs": [[ids], ...], "errors": "replace" | "strict", "output": "text" | "bytes"}
            → {"model", "results": [{"text": ...} | {"data": "<base64>"}]}
    models  → {"models": [{"name", "versions", "latest_version", "aliases"}]}
    model   (one reference) → {"model", "n_vocab", "max_token_value", "special_tokens", "pattern", "eot_token", "sha256"}

`"text": "..."` (encode/count) and `"ids": [...]` (decode) are shorthands for a one-item `inputs`. Raw bytes
(`{"data": ...}`) are always encoded as ordinary text, as in the gRPC API. The special-token policy is
tiktoken's: by default nothing is allowed and everything is disallowed, so text containing a special token
is a 400 naming the token, the item and the character offset.

Limits (413): `max_batch_items` inputs per request; `max_request_bytes` of input (UTF-8 text or raw bytes;
4 bytes per token id for decode); per-token `detail` only up to `max_detail_bytes` of input, because it
multiplies the response size by ~50.

Not handled: streaming, and several models in one request (the page sends one request per model).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tokend.errors import TokendError

from .http_error import HttpError, bad_request, error_from_exception, too_large
from .token_view import describe_tokens

SpecialSet = set[str] | Literal["all"]


@dataclass(frozen=True)
class PlaygroundLimits:
    """Bounds on one request; the defaults are the server's (`TOKEND_MAX_REQUEST_BYTES`, `TOKEND_MAX_BATCH_ITEMS`).

    >>> PlaygroundLimits(max_request_bytes=1024).max_body_bytes
    71680
    """

    max_request_bytes: int = 8 * 1024 * 1024
    max_batch_items: int = 1024
    max_detail_bytes: int = 256 * 1024

    @property
    def max_body_bytes(self) -> int:
        # JSON may spell one input byte as six characters ("\u0000"); the envelope gets 64 KiB on top.
        return 6 * self.max_request_bytes + 64 * 1024


class _Registry(Protocol):
    def list_models(self) -> list[Any]: ...
    def load(self, ref: str) -> Any: ...


_ENCODE_FIELDS = frozenset({"model", "inputs", "text", "allowed_special", "disallowed_special", "detail"})
_COUNT_FIELDS = _ENCODE_FIELDS - {"detail"}
_DECODE_FIELDS = frozenset({"model", "inputs", "ids", "errors", "output"})


class PlaygroundApi:
    """The JSON API over a registry; every method takes the parsed JSON body and returns the response dict.

    >>> from tokend.registry import Registry
    >>> api = PlaygroundApi(Registry.open())
    >>> api.count({"model": "cl100k_base", "text": "hello world"})["total"]
    2
    """

    def __init__(self, registry: _Registry, limits: PlaygroundLimits | None = None) -> None:
        self._registry = registry
        self.limits = limits or PlaygroundLimits()

    # -- endpoints ---------------------------------------------------------------------------------------

    def models(self) -> dict[str, Any]:
        return {
            "models": [
                {
                    "name": summary.name,
                    "versions": sorted(summary.versions),
                    "latest_version": summary.latest_version,
                    "aliases": dict(summary.aliases),
                }
                for summary in sorted(self._registry.list_models(), key=lambda summary: summary.name)
            ]
        }

    def model(self, ref: str) -> dict[str, Any]:
        loaded = self._load(ref)
        encoding = loaded.encoding
        return {
            "model": _model_version(loaded),
            "n_vocab": encoding.n_vocab,
            "max_token_value": encoding.max_token_value,
            "special_tokens": dict(encoding.special_tokens),
            "pattern": encoding.pattern,
            # as the gRPC GetModel: present only when the model has <|endoftext|> (eot_token raises otherwise)
            "eot_token": encoding.special_tokens.get("<|endoftext|>"),
            "sha256": loaded.manifest_sha256,
        }

    def encode(self, body: Any) -> dict[str, Any]:
        request = _object(body, _ENCODE_FIELDS)
        loaded = self._load(_model_ref(request))
        inputs = self._text_inputs(request)
        allowed, disallowed = _special_policy(request)
        detail = _boolean(request, "detail")
        if detail:
            size = sum(len(_as_bytes(item)) for item in inputs)
            if size > self.limits.max_detail_bytes:
                raise too_large(
                    f'"detail": true is limited to {self.limits.max_detail_bytes} bytes of input, this request has '
                    f'{size}; send less text or ask without "detail"',
                    limit=self.limits.max_detail_bytes, setting="max_detail_bytes",
                )
        encoding = loaded.encoding
        special_ids = frozenset(encoding.special_tokens.values())
        results = []
        for index, item in enumerate(inputs):
            ids = _call(index, _encode_one, encoding, item, allowed, disallowed)
            result: dict[str, Any] = {"ids": ids}
            if detail:
                result["tokens"] = describe_tokens(encoding, ids, special_ids)
            results.append(result)
        return {
            "model": _model_version(loaded),
            "results": results,
            "total_tokens": sum(len(result["ids"]) for result in results),
        }

    def count(self, body: Any) -> dict[str, Any]:
        request = _object(body, _COUNT_FIELDS)
        loaded = self._load(_model_ref(request))
        inputs = self._text_inputs(request)
        allowed, disallowed = _special_policy(request)
        encoding = loaded.encoding
        counts = [_call(index, _count_one, encoding, item, allowed, disallowed) for index, item in enumerate(inputs)]
        return {"model": _model_version(loaded), "counts": counts, "total": sum(counts)}

    def decode(self, body: Any) -> dict[str, Any]:
        request = _object(body, _DECODE_FIELDS)
        loaded = self._load(_model_ref(request))
        inputs = self._id_inputs(request)
        errors = _choice(request, "errors", ("replace", "strict"))
        output = _choice(request, "output", ("text", "bytes"))
        encoding = loaded.encoding
        results = []
        for index, ids in enumerate(inputs):
            if output == "bytes":
                data = _call(index, encoding.decode_bytes, ids)
                results.append({"data": base64.b64encode(data).decode("ascii")})
            else:
                results.append({"text": _call(index, encoding.decode, ids, errors=errors)})
        return {"model": _model_version(loaded), "results": results}

    # -- request parts -----------------------------------------------------------------------------------

    def _load(self, ref: str) -> Any:
        try:
            return self._registry.load(ref)
        except TokendError as exc:
            raise error_from_exception(exc) from exc

    def _text_inputs(self, request: dict[str, Any]) -> list[str | bytes]:
        raw = _items(request, "text", "inputs")
        self._check_items(len(raw))
        inputs: list[str | bytes] = []
        for index, item in enumerate(raw):
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
        self._check_size(sum(len(_as_bytes(item)) for item in inputs))
        return inputs

    def _id_inputs(self, request: dict[str, Any]) -> list[list[int]]:
        raw = _items(request, "ids", "inputs")
        self._check_items(len(raw))
        inputs: list[list[int]] = []
        for index, item in enumerate(raw):
            if not isinstance(item, list):
                raise bad_request(f"inputs[{index}] must be a list of token ids", item=index)
            for position, token_id in enumerate(item):
                # bool is an int in Python and JSON true would otherwise decode as token 1
                if not isinstance(token_id, int) or isinstance(token_id, bool) or token_id < 0:
                    raise bad_request(
                        f"inputs[{index}][{position}] = {token_id!r} is not a token id (a non-negative integer)",
                        item=index,
                    )
            inputs.append(item)
        # Token ids travel as uint32 in the gRPC API: 4 bytes each counts against the same limit.
        self._check_size(4 * sum(len(ids) for ids in inputs))
        return inputs

    def _check_items(self, count: int) -> None:
        if count > self.limits.max_batch_items:
            raise too_large(
                f"{count} inputs exceed the limit of {self.limits.max_batch_items} per request; split the batch",
                limit=self.limits.max_batch_items, setting="max_batch_items",
            )

    def _check_size(self, size: int) -> None:
        if size > self.limits.max_request_bytes:
            raise too_large(
                f"{size} bytes of input exceed the limit of {self.limits.max_request_bytes} per request; "
                "send less per request",
                limit=self.limits.max_request_bytes, setting="max_request_bytes",
            )


# -- helpers (module level: they need no state) ------------------------------------------------------------


def _call(index: int, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one item's engine call; its domain errors become HTTP errors that name the item."""
    try:
        return function(*args, **kwargs)
    except (TokendError, UnicodeDecodeError) as exc:
        raise error_from_exception(exc, item=index) from exc


def _encode_one(encoding: Any, item: str | bytes, allowed: SpecialSet, disallowed: SpecialSet) -> list[int]:
    if isinstance(item, bytes):
        return list(encoding.encode_bytes(item))
    return list(encoding.encode(item, allowed_special=allowed, disallowed_special=disallowed))


def _count_one(encoding: Any, item: str | bytes, allowed: SpecialSet, disallowed: SpecialSet) -> int:
    if isinstance(item, bytes):
        return len(encoding.encode_bytes(item))
    return int(encoding.count(item, allowed_special=allowed, disallowed_special=disallowed))


def _as_bytes(item: str | bytes) -> bytes:
    return item if isinstance(item, bytes) else item.encode("utf-8", errors="surrogatepass")


def _model_version(loaded: Any) -> dict[str, Any]:
    return {"name": loaded.name, "version": loaded.version}


def _object(body: Any, fields: Iterable[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    accepted = sorted(fields)
    unknown = sorted(set(body) - set(accepted))
    if unknown:
        raise bad_request(f"unknown field(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
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


def _special_policy(request: dict[str, Any]) -> tuple[SpecialSet, SpecialSet]:
    return (
        _special_set(request.get("allowed_special", []), "allowed_special"),
        _special_set(request.get("disallowed_special", "all"), "disallowed_special"),
    )


def _special_set(value: Any, field: str) -> SpecialSet:
    if value == "all":
        return "all"
    if isinstance(value, list) and all(isinstance(token, str) for token in value):
        return set(value)
    raise bad_request(f'"{field}" must be "all" or a list of special-token strings, e.g. ["<|endoftext|>"]')


def _boolean(request: dict[str, Any], field: str) -> bool:
    value = request.get(field, False)
    if not isinstance(value, bool):
        raise bad_request(f'"{field}" must be true or false')
    return value


def _choice(request: dict[str, Any], field: str, choices: tuple[str, ...]) -> str:
    value = request.get(field, choices[0])
    if value not in choices:
        raise bad_request(f'"{field}" must be one of {", ".join(map(repr, choices))}, not {value!r}')
    return value


__all__ = ["HttpError", "PlaygroundApi", "PlaygroundLimits"]
