"""The operations every front-end offers, written once: encode, count, decode, list models, model details
(and the chat operations, ``encode_chat`` / ``count_chat``, from ``tokend.service.chat``).

A front-end (gRPC servicer, JSON API, command line) turns its wire format into one call here and the
result back; it passes the call's state (deadline, cancellation) as ``call`` and translates errors with
``tokend.service.errors.describe``. Each operation: checks the request limits, resolves the model once
(every item is answered by that exact version), binds the special-token policy to it, runs the batch loop
(stopping at the deadline), bounds the size of the answer before building it, and records the call's facts
(``call_record``) for logs and metrics.

    service = TokenizerService(ServedModels(Registry.open()), Limits())
    service.encode("cl100k_base", ["hello world"]).ids                 # [[15339, 1917]]
    service.count("o200k_base@1", ["hi <|endoftext|>"], special=SpecialTokenPolicy(allowed="all")).total
    service.decode("cl100k_base", [[15339, 1917]]).results             # ['hello world']

Inputs of encode/count are ``str`` (text, subject to the special-token policy) or ``bytes`` (raw bytes,
always ordinary text). Not handled: streaming.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from tokend.service.batch import CallState, run_batch
from tokend.service.call_record import current_record
from tokend.service.chat import ChatOperations
from tokend.service.errors import InvalidRequest
from tokend.service.limits import BYTES_PER_TOKEN_ID, AnswerBudget, Limits, answer_bytes, input_bytes, text_bytes
from tokend.service.models import ServedModels, payload_format_name
from tokend.service.results import Counted, Decoded, Encoded, ModelDetails, ModelInfo, ModelVersion
from tokend.service.special_policy import DEFAULT_POLICY, BoundPolicy, SpecialTokenPolicy
from tokend.service.token_sizes import decoded_bytes

__all__ = ["TokenizerService", "DECODE_ERRORS", "DECODE_OUTPUTS"]

DECODE_ERRORS = ("replace", "strict")
DECODE_OUTPUTS = ("text", "bytes")


class TokenizerService(ChatOperations):  # encode_chat, count_chat: service/chat.py
    def __init__(self, models: ServedModels, limits: Limits | None = None) -> None:
        self.models = models
        self.limits = limits or Limits()

    # ---- operations ----------------------------------------------------------------------------
    def encode(
        self,
        model: str,
        inputs: Sequence[str | bytes],
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        call: CallState | None = None,
    ) -> Encoded:
        """Token ids of each input; raises BatchItemError naming the item that breaks the policy."""
        size, loaded, policy = self._text_request(model, inputs, special)
        encoding = loaded.encoding
        answer = AnswerBudget(self.limits, items=len(inputs), max_token_value=encoding.max_token_value)

        def encode(item: str | bytes) -> list[int]:
            ids = encoding.encode_bytes(item) if isinstance(item, bytes) else policy.apply(encoding.encode, item)
            answer.add(ids)  # stops before holding more than can be sent
            return ids

        ids = run_batch(inputs, encode, call=call)
        total = sum(map(len, ids))
        _record("encode", len(inputs), total, size)
        return Encoded(_version(loaded), ids, total)

    def count(
        self,
        model: str,
        inputs: Sequence[str | bytes],
        *,
        special: SpecialTokenPolicy = DEFAULT_POLICY,
        call: CallState | None = None,
    ) -> Counted:
        """Tokens of each input (the ids ``encode`` gives, counted without building them where possible)."""
        size, loaded, policy = self._text_request(model, inputs, special)
        encoding = loaded.encoding

        def count(item: str | bytes) -> int:
            if isinstance(item, bytes):
                return len(encoding.encode_bytes(item))
            return policy.apply(encoding.count, item)

        counts = run_batch(inputs, count, call=call)
        total = sum(counts)
        _record("count", len(inputs), total, size)
        return Counted(_version(loaded), counts, total)

    def decode(
        self,
        model: str,
        inputs: Sequence[Sequence[int]],
        *,
        errors: Literal["replace", "strict"] = "replace",
        output: Literal["text", "bytes"] = "text",
        call: CallState | None = None,
    ) -> Decoded:
        """Text (``errors`` as in tiktoken) or bytes of each id list; the answer's size is known up front."""
        if errors not in DECODE_ERRORS:
            raise InvalidRequest("errors", f"unknown value {errors!r}; use one of {', '.join(DECODE_ERRORS)}")
        if output not in DECODE_OUTPUTS:
            raise InvalidRequest("output", f"unknown value {output!r}; use one of {', '.join(DECODE_OUTPUTS)}")
        ids = sum(len(item) for item in inputs)
        self.limits.check_request(items=len(inputs), input_bytes=BYTES_PER_TOKEN_ID * ids)
        loaded = self.models.load(model)
        encoding = loaded.encoding
        # Known before decoding; replacing invalid UTF-8 can only make text longer (checked as it grows).
        framing = answer_bytes(items=len(inputs))
        self.limits.check_answer(
            framing + decoded_bytes(encoding, inputs, enough=self.limits.max_response_bytes - framing)
        )
        if output == "bytes":
            results: list[Any] = run_batch(inputs, encoding.decode_bytes, call=call)
        else:
            answer = answer_bytes(items=len(inputs))

            def decode(item: Sequence[int]) -> str:
                nonlocal answer
                text = encoding.decode(item, errors=errors)
                answer += text_bytes(text)
                self.limits.check_answer(answer, partial=True)
                return text

            results = run_batch(inputs, decode, call=call)
        _record("decode", len(inputs), ids, 0)
        return Decoded(_version(loaded), results)

    def list_models(self) -> list[ModelInfo]:
        """Every model of the registry, by name."""
        return [
            ModelInfo(summary.name, sorted(summary.versions), summary.latest_version, dict(summary.aliases))
            for summary in sorted(self.models.registry.list_models(), key=lambda summary: summary.name)
        ]

    def get_model(self, model: str) -> ModelDetails:
        """One exact model version: vocabulary, special tokens, pattern, checksum, aliases."""
        loaded = self.models.load(model)
        manifest = loaded.manifest
        encoding = loaded.encoding
        aliases = sorted(
            alias
            for summary in self.models.registry.list_models()
            if summary.name == loaded.name
            for alias, version in summary.aliases.items()
            if version == loaded.version
        )
        try:
            eot: int | None = encoding.eot_token
        except (KeyError, AttributeError):  # tiktoken's behaviour for a model without <|endoftext|>
            eot = None
        return ModelDetails(
            model=_version(loaded),
            n_vocab=encoding.n_vocab,
            max_token_value=encoding.max_token_value,
            special_tokens=dict(encoding.special_tokens),
            pattern=encoding.pattern,
            payload_format=payload_format_name(manifest.payload_format),
            sha256=loaded.manifest_sha256,
            description=manifest.description,
            created_at=manifest.created_at,
            aliases=aliases,
            eot_token=eot,
            chat_format=manifest.chat_format.name if manifest.chat_format is not None else None,
        )

    # ---- parts ---------------------------------------------------------------------------------
    def _text_request(
        self, model: str, inputs: Sequence[str | bytes], special: SpecialTokenPolicy
    ) -> tuple[int, Any, BoundPolicy]:
        """Limits first (nothing is loaded for a refused request), then the model and the bound policy;
        returns the input bytes, the LoadedModel and the policy."""
        size = input_bytes(inputs)
        self.limits.check_request(items=len(inputs), input_bytes=size + special.listed_bytes())
        loaded = self.models.load(model)
        return size, loaded, special.bind(loaded.encoding)


def _version(loaded: Any) -> ModelVersion:
    return ModelVersion(loaded.name, loaded.version)


def _record(operation: str, items: int, tokens: int, size: int) -> None:
    record = current_record()
    if record is not None:
        record.operation, record.items, record.tokens, record.input_bytes = operation, items, tokens, size
