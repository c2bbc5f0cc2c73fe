"""The ``tokend.v1.Tokenizer`` servicer: request message → service call → response message, nothing else.

It receives the service in ``__init__``. Errors are raised as typed exceptions and become status codes in
the error interceptor (``status_mapping``); the availability gate, metrics and logs are interceptors too.
Adding an operation: one method here that calls the service and builds the response. The token-budget
RPCs (Truncate, Chunk, ChunkStream, DecodeStream, and Encode's offsets) are in ``budget_rpcs``; the
message helpers both use are in ``messages``, the chat RPCs' (EncodeChat, CountChatTokens) in ``chat_messages``.
Encode returns an ``EncodeAnswer`` (``encode_answer``), not a message: its wire bytes are written natively
by the method's response serializer, which ``grpc_server.add_services`` registers; a large Decode request
arrives as a ``DecodeIds`` (``decode_request``: its ids read without the GIL by the method's deserializer), a
large Encode (without offsets) or CountTokens request as a ``TextRequest`` (``text_request``: its texts so read).

    servicer = TokenizerServicer(TokenizerService(ServedModels(registry), limits))
    add_services(server, tokenizer=servicer, health=health, reflection_enabled=False)   # grpc_server
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

import grpc
from tokend_api.v1 import tokenizer_pb2 as pb
from tokend_api.v1 import tokenizer_pb2_grpc

from tokend.server.budget_rpcs import BudgetRpcs
from tokend.server.decode_request import DecodeIds
from tokend.server.encode_answer import EncodeAnswer
from tokend.server.chat_messages import (
    chat_count_message,
    chat_encoding_message,
    content_special_tokens_from,
    conversations_from,
)
from tokend.server.messages import DECODE_ERRORS as _ERRORS
from tokend.server.messages import enum_value as _enum
from tokend.server.messages import inputs as _inputs
from tokend.server.messages import model_version as _model_version
from tokend.server.messages import policy as _policy
from tokend.server.text_request import TextRequest
from tokend.service import ChatConversation, TokenizerService

__all__ = ["TokenizerServicer"]

_OUTPUTS = {pb.DecodeRequest.OUTPUT_UNSPECIFIED: "text", pb.DecodeRequest.OUTPUT_TEXT: "text",
            pb.DecodeRequest.OUTPUT_BYTES: "bytes"}  # fmt: skip


class TokenizerServicer(BudgetRpcs, tokenizer_pb2_grpc.TokenizerServicer):
    def __init__(self, service: TokenizerService) -> None:
        self._service = service

    def Encode(self, request: pb.EncodeRequest | TextRequest, context: grpc.ServicerContext) -> EncodeAnswer | pb.EncodeResponse:
        if not isinstance(request, TextRequest) and (request.offsets or request.token_bytes):
            return self.encode_with_offsets(request, context)  # budget_rpcs
        encoded = self._service.encode(
            request.model, _text_inputs(request), special=_policy(request.special_tokens), call=context, packed=True
        )
        # Not a pb.EncodeResponse: its wire bytes are written from the ids' buffers without the GIL
        # (encode_answer; the Encode method's response serializer, see grpc_server.add_services).
        return EncodeAnswer(encoded.model, encoded.ids, encoded.total_tokens)

    def CountTokens(self, request: pb.CountTokensRequest | TextRequest, context: grpc.ServicerContext) -> pb.CountTokensResponse:
        counted = self._service.count(
            request.model, _text_inputs(request), special=_policy(request.special_tokens), call=context
        )
        return pb.CountTokensResponse(model=_model_version(counted.model), counts=counted.counts, total=counted.total)

    def Decode(self, request: pb.DecodeRequest | DecodeIds, context: grpc.ServicerContext) -> pb.DecodeResponse:
        errors = _enum(request.errors, _ERRORS, "errors", pb.DecodeRequest.Errors)
        output = _enum(request.output, _OUTPUTS, "output", pb.DecodeRequest.Output)
        inputs = request.ids if isinstance(request, DecodeIds) else [item.ids for item in request.inputs]
        decoded = self._service.decode(request.model, inputs, errors=errors, output=output, call=context)
        field = "data" if output == "bytes" else "text"
        return pb.DecodeResponse(
            model=_model_version(decoded.model), results=[pb.DecodeResult(**{field: value}) for value in decoded.results]
        )

    def ListModels(self, request: pb.ListModelsRequest, context: grpc.ServicerContext) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(
            models=[
                pb.ModelSummary(
                    name=info.name, versions=info.versions, latest_version=info.latest_version, aliases=info.aliases
                )
                for info in self._service.list_models()
            ]
        )

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.GetModelResponse:
        model = self._service.get_model(request.model, call=context)
        details = pb.ModelDetails(
            model=_model_version(model.model),
            n_vocab=model.n_vocab,
            max_token_value=model.max_token_value,
            special_tokens=model.special_tokens,
            pattern=model.pattern,
            payload_format=model.payload_format,
            sha256=model.sha256,
            description=model.description,
            created_at=_rfc3339(model.created_at),
            aliases=model.aliases,
            algorithm=model.algorithm,
            normalizer=model.normalizer or "",
        )
        if model.eot_token is not None:
            details.eot_token = model.eot_token
        if model.chat_format is not None:
            chat = model.chat_format
            details.chat_format.CopyFrom(
                pb.ChatFormatDetails(name=chat.name, kind=chat.kind, estimate=chat.estimate, description=chat.description)
            )
        for role, (text, token_id) in model.role_tokens.items():
            getattr(details, f"{role}_token").CopyFrom(pb.ModelToken(text=text, id=token_id))
        return pb.GetModelResponse(details=details)

    def EncodeChat(self, request: pb.EncodeChatRequest, context: grpc.ServicerContext) -> pb.EncodeChatResponse:
        encoded = self._service.encode_chat(
            request.model, self._conversations(request.conversations),
            content_special_tokens=content_special_tokens_from(request.content_special_tokens), call=context,
        )  # fmt: skip
        response = pb.EncodeChatResponse(model=_model_version(encoded.model), total_tokens=encoded.total_tokens)
        response.results.extend(map(chat_encoding_message, encoded.results))
        return response

    def CountChatTokens(self, request: pb.CountChatTokensRequest, context: grpc.ServicerContext) -> pb.CountChatTokensResponse:
        counted = self._service.count_chat(
            request.model, self._conversations(request.conversations),
            content_special_tokens=content_special_tokens_from(request.content_special_tokens),
            per_message=not request.total_only, call=context,
        )  # fmt: skip
        return pb.CountChatTokensResponse(
            model=_model_version(counted.model), results=map(chat_count_message, counted.results), total=counted.total
        )

    def _conversations(self, messages: Sequence[pb.ChatConversation]) -> list[ChatConversation]:
        # The limits that message counts settle are checked before any message becomes a dict.
        self._service.check_chat_shape([len(conversation.messages) for conversation in messages])
        return conversations_from(messages)


def _text_inputs(request: pb.EncodeRequest | pb.CountTokensRequest | TextRequest) -> list[str | bytes]:
    return request.inputs if isinstance(request, TextRequest) else _inputs(request.inputs)


def _rfc3339(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value.microsecond == 0 else value.isoformat().replace("+00:00", "Z")
    return value.isoformat()
