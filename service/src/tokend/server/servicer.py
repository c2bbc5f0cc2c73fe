"""The ``tokend.v1.Tokenizer`` servicer: request message → domain call → response message, nothing else.

It receives its collaborators in ``__init__`` (the served models, the limits, the availability gate);
errors are raised as typed exceptions and become status codes in the error interceptor
(``status_mapping``); metrics and logs are recorded by interceptors. One request resolves its model
once, so every item of a batch is answered by the same exact version, which the response names.

Not handled: streaming RPCs (the API has none).

    servicer = TokenizerServicer(models=served, limits=RequestLimits(1024, 8 << 20), availability=availability)
    tokenizer_pb2_grpc.add_TokenizerServicer_to_server(servicer, server)
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import grpc

from tokend._proto import tokenizer_pb2 as pb
from tokend._proto import tokenizer_pb2_grpc
from tokend.server.availability import Availability
from tokend.server.batch import run_batch
from tokend.server.request_limits import RequestLimits, input_bytes
from tokend.server.served_models import PAYLOAD_FORMAT_NAMES, ServedModels
from tokend.server.special_policy import to_special_arguments

__all__ = ["TokenizerServicer"]


class TokenizerServicer(tokenizer_pb2_grpc.TokenizerServicer):
    def __init__(self, *, models: ServedModels, limits: RequestLimits, availability: Availability) -> None:
        self._models = models
        self._limits = limits
        self._availability = availability

    def Encode(self, request: pb.EncodeRequest, context: grpc.ServicerContext) -> pb.EncodeResponse:
        self._availability.require_serving()
        self._limits.check(items=len(request.inputs), input_bytes=input_bytes(request.inputs))
        model = self._models.load(request.model)
        special = to_special_arguments(request.special_tokens).as_kwargs()
        encoding = model.encoding

        def encode(item: pb.Input) -> list[int]:
            if item.WhichOneof("content") == "data":
                return encoding.encode_bytes(item.data)
            return encoding.encode(item.text, **special)

        token_lists = run_batch(request.inputs, encode, call=context)
        response = pb.EncodeResponse(model=_model_version(model), total_tokens=sum(map(len, token_lists)))
        # add().ids.extend(): measured 1.7x faster than results=[pb.TokenIds(ids=ids), ...] (which copies
        # each message into the response) — 26 ns per id was as much as encoding multilingual text.
        for ids in token_lists:
            response.results.add().ids.extend(ids)
        return response

    def CountTokens(self, request: pb.CountTokensRequest, context: grpc.ServicerContext) -> pb.CountTokensResponse:
        self._availability.require_serving()
        self._limits.check(items=len(request.inputs), input_bytes=input_bytes(request.inputs))
        model = self._models.load(request.model)
        special = to_special_arguments(request.special_tokens).as_kwargs()
        encoding = model.encoding

        def count(item: pb.Input) -> int:
            if item.WhichOneof("content") == "data":
                return len(encoding.encode_bytes(item.data))
            return encoding.count(item.text, **special)

        counts = run_batch(request.inputs, count, call=context)
        return pb.CountTokensResponse(model=_model_version(model), counts=counts, total=sum(counts))

    def Decode(self, request: pb.DecodeRequest, context: grpc.ServicerContext) -> pb.DecodeResponse:
        self._availability.require_serving()
        # Input bytes of a decode request: 4 per id, the size of the ids a client holds in memory.
        self._limits.check(items=len(request.inputs), input_bytes=4 * sum(len(item.ids) for item in request.inputs))
        model = self._models.load(request.model)
        encoding = model.encoding
        if request.output == pb.DecodeRequest.OUTPUT_BYTES:

            def decode(item: pb.TokenIds) -> pb.DecodeResult:
                return pb.DecodeResult(data=encoding.decode_bytes(list(item.ids)))

        else:
            errors = "strict" if request.errors == pb.DecodeRequest.ERRORS_STRICT else "replace"

            def decode(item: pb.TokenIds) -> pb.DecodeResult:
                return pb.DecodeResult(text=encoding.decode(list(item.ids), errors=errors))

        results = run_batch(request.inputs, decode, call=context)
        return pb.DecodeResponse(model=_model_version(model), results=results)

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        self._availability.require_serving()
        return pb.ListModelsResponse(
            models=[
                pb.ModelSummary(
                    name=summary.name,
                    versions=list(summary.versions),
                    latest_version=summary.latest_version,
                    aliases=dict(summary.aliases),
                )
                for summary in self._models.registry.list_models()
            ]
        )

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        self._availability.require_serving()
        model = self._models.load(request.model)
        manifest = model.manifest
        encoding = model.encoding
        aliases = sorted(
            alias
            for summary in self._models.registry.list_models()
            if summary.name == model.name
            for alias, version in summary.aliases.items()
            if version == model.version
        )
        details = pb.ModelDetails(
            model=_model_version(model),
            n_vocab=encoding.n_vocab,
            max_token_value=encoding.max_token_value,
            special_tokens=dict(encoding.special_tokens),
            pattern=encoding.pattern,
            payload_format=PAYLOAD_FORMAT_NAMES.get(manifest.payload_format, manifest.payload_format),
            sha256=model.manifest_sha256,
            description=manifest.description,
            created_at=_rfc3339(manifest.created_at),
            aliases=aliases,
        )
        try:
            eot = encoding.eot_token
        except KeyError:  # tiktoken's behaviour for a model without <|endoftext|>
            eot = None
        if eot is not None:
            details.eot_token = eot
        return pb.GetModelResponse(details=details)


def _model_version(model: Any) -> pb.ModelVersion:
    return pb.ModelVersion(name=model.name, version=model.version)


def _rfc3339(value: Any) -> str:
    if value is None:
        return ""
    if getattr(value, "tzinfo", None) is not None:
        value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value.microsecond == 0 else value.isoformat().replace("+00:00", "Z")
    return value.isoformat()
