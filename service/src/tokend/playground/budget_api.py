"""The playground's JSON API for token budgets: request dict → service call → response dict. No HTTP here.

`PlaygroundApi` inherits these endpoints (and `encode` takes `"offsets": true` through ``token_offsets``):

    truncate  {"model", "text" | "inputs": [...], "max_tokens": N, "side": "right" | "left",
               "allowed_special", "disallowed_special"}
              → {"model", "results": [{"text", "start", "end", "byte_start", "byte_end", "ids", "token_count",
                                       "total_tokens", "truncated"}]}
    chunk     {"model", "text" | "inputs", "max_tokens": N, "overlap": 0, "prefer": "paragraph" | "sentence" |
               "whitespace" | "token", "max_chunks": null, "allowed_special", "disallowed_special"}
              → {"model", "results": [{"chunks": [{"text", "start", "end", "byte_start", "byte_end", "ids",
                                                   "token_count"}]}]}
    encode    + "offsets": true → each result also has "offsets": [[start, end], ...] (characters) and
              "byte_offsets": [[start, end], ...] (bytes of its UTF-8), one pair per token

Spans count characters (code points) of the input, as the gRPC API does (a browser indexes UTF-16 code
units: the page converts). Errors: 400 naming the argument (`argument`, `item`) for a budget out of range or
one no cut of the text meets; 422 when the model's tokens do not spell the text; 413 for the limits, with
offsets (like "detail") only up to `max_detail_bytes` of input, and a chunk answer's texts at most
`max_response_bytes` in all (an overlap repeats them; the service refuses them as it chunks, budgets.py).
"""

from __future__ import annotations

from typing import Any

from tokend.service import RequestLimitExceeded
from tokend.service.limits import input_bytes

from .http_error import bad_request, quoted_value

__all__ = ["BudgetApi", "TRUNCATE_FIELDS", "CHUNK_FIELDS"]

_POLICY_FIELDS = frozenset({"model", "inputs", "text", "allowed_special", "disallowed_special"})
TRUNCATE_FIELDS = _POLICY_FIELDS | {"max_tokens", "side"}
CHUNK_FIELDS = _POLICY_FIELDS | {"max_tokens", "overlap", "prefer", "max_chunks"}


class BudgetApi:
    """Mixin of `PlaygroundApi` (which provides ``service``, ``limits`` and the request-part helpers)."""

    service: Any
    limits: Any

    # The request-part helpers are api.py's, imported per call: api.py imports this module for its class.

    def truncate(self, body: Any) -> dict[str, Any]:
        from .api import _model_ref, _model_version, _object, _special_policy, _text_inputs

        request = _object(body, TRUNCATE_FIELDS)
        truncated = self.service.truncate(
            _model_ref(request), _text_inputs(request), _integer(request, "max_tokens"),
            request.get("side", "right"), special=_special_policy(request),
        )  # fmt: skip
        return {
            "model": _model_version(truncated.model),
            "results": [
                {"text": kept.text, "start": kept.start, "end": kept.end, "byte_start": kept.byte_start,
                 "byte_end": kept.byte_end, "ids": kept.ids, "token_count": len(kept.ids),
                 "total_tokens": kept.total_tokens, "truncated": len(kept.ids) < kept.total_tokens}
                for kept in truncated.results
            ],
        }  # fmt: skip

    def chunk(self, body: Any) -> dict[str, Any]:
        from .api import _model_ref, _model_version, _object, _special_policy, _text_inputs

        request = _object(body, CHUNK_FIELDS)
        max_chunks = request.get("max_chunks")
        chunked = self.service.chunk(
            _model_ref(request), _text_inputs(request), _integer(request, "max_tokens"),
            _integer(request, "overlap", 0), request.get("prefer", "paragraph"), special=_special_policy(request),
            max_chunks=None if max_chunks is None else _integer(request, "max_chunks"),
        )  # fmt: skip
        return {
            "model": _model_version(chunked.model),
            "results": [
                {"chunks": [
                    {"text": piece.text, "start": piece.start, "end": piece.end, "byte_start": piece.byte_start,
                     "byte_end": piece.byte_end, "ids": piece.ids, "token_count": len(piece.ids)}
                    for piece in chunks
                ]}
                for chunks in chunked.results
            ],
        }  # fmt: skip

    def token_offsets(self, ref: str, inputs: list[Any], special: Any) -> tuple[Any, list[dict[str, Any]]]:
        """Encode with offsets (``encode`` with ``"offsets": true``): the result dicts with their spans."""
        size = input_bytes(inputs)
        if size > self.limits.max_detail_bytes:
            raise RequestLimitExceeded(
                "max_detail_bytes", self.limits.max_detail_bytes, size, unit='input bytes with "offsets": true',
                hint='send less text or ask without "offsets"',
            )  # fmt: skip
        encoded = self.service.encode_with_offsets(ref, inputs, special=special)
        results = [
            {"ids": ids, "offsets": [list(pair) for pair in zip(spans.starts, spans.ends)],
             "byte_offsets": [list(pair) for pair in zip(spans.byte_starts, spans.byte_ends)]}
            for ids, spans in zip(encoded.ids, encoded.spans)
        ]  # fmt: skip
        return encoded, results


def _integer(request: dict[str, Any], field: str, default: int | None = None) -> int:
    value = request.get(field, default)
    if value is None:
        raise bad_request(f'"{field}" is required: a whole number')
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f'"{field}" must be a whole number, not {quoted_value(value)}')
    return value
