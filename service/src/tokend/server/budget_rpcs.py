"""The token-budget RPCs of ``tokend.v1.Tokenizer``: message → service call → message, nothing else.

`TokenizerServicer` inherits them. Encode with ``offsets`` / ``token_bytes``, Truncate and Chunk are
unary (Chunk returns a ``ChunkAnswer``, serialized by chunk_answer.py a group of chunks at a time); ChunkStream sends one document's chunks as they are made, several to a message once the first is
out (``STREAM_MESSAGE_BYTES`` / ``STREAM_MESSAGE_SECONDS``: a message per chunk costs more than a small
chunk); DecodeStream answers each request message with the characters its ids completed.

Answers carry spans, not text: the caller has the text (``input[start:end]`` in code points, or its UTF-8
``[byte_start:byte_end]``), and an 8 MiB document sent back as chunk texts would double the answer.

    servicer.Truncate(pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")],
                                         max_tokens=1), context).results[0].end            # 5
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

import grpc
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.server.chunk_answer import ChunkAnswer, add_chunks
from tokend.server.messages import DECODE_ERRORS, enum_value, inputs, model_version, policy
from tokend.service import CallCancelled, DeadlineExpired, InvalidRequest

__all__ = ["BudgetRpcs", "STREAM_MESSAGE_BYTES", "STREAM_MESSAGE_SECONDS"]

_SIDES = {pb.TruncateRequest.SIDE_UNSPECIFIED: "right", pb.TruncateRequest.SIDE_RIGHT: "right",
          pb.TruncateRequest.SIDE_LEFT: "left"}  # fmt: skip
_PREFER = {pb.ChunkRequest.PREFER_UNSPECIFIED: "paragraph", pb.ChunkRequest.PREFER_PARAGRAPH: "paragraph",
           pb.ChunkRequest.PREFER_SENTENCE: "sentence", pb.ChunkRequest.PREFER_WHITESPACE: "whitespace",
           pb.ChunkRequest.PREFER_TOKEN: "token"}  # fmt: skip
# A ChunkStream message is sent once it holds about this many bytes of chunks, or this long after the
# previous one, whichever comes first (the first chunk goes out alone, at once).
STREAM_MESSAGE_BYTES = 64 * 1024
STREAM_MESSAGE_SECONDS = 0.05


class BudgetRpcs:
    _service: Any  # TokenizerService, set by TokenizerServicer

    def encode_with_offsets(self, request: pb.EncodeRequest, context: grpc.ServicerContext) -> pb.EncodeResponse:
        encoded = self._service.encode_with_offsets(
            request.model, inputs(request.inputs), special=policy(request.special_tokens),
            offsets=request.offsets, token_bytes=request.token_bytes, call=context,
        )  # fmt: skip
        response = pb.EncodeResponse(model=model_version(encoded.model), total_tokens=encoded.total_tokens)
        for ids, spans in zip(encoded.ids, encoded.spans):
            response.results.add().ids.extend(ids)
            offsets = response.offsets.add()
            if spans.starts is not None:
                offsets.starts.extend(spans.starts)
                offsets.ends.extend(spans.ends)
                offsets.byte_starts.extend(spans.byte_starts)
                offsets.byte_ends.extend(spans.byte_ends)
            if spans.token_bytes is not None:
                offsets.token_bytes.extend(spans.token_bytes)
        return response

    def Truncate(self, request: pb.TruncateRequest, context: grpc.ServicerContext) -> pb.TruncateResponse:
        truncated = self._service.truncate(
            request.model, inputs(request.inputs), _required(request, "max_tokens"),
            enum_value(request.side, _SIDES, "side", pb.TruncateRequest.Side),
            special=policy(request.special_tokens), call=context,
        )  # fmt: skip
        response = pb.TruncateResponse(model=model_version(truncated.model))
        for kept in truncated.results:
            result = response.results.add(
                start=kept.start, end=kept.end, byte_start=kept.byte_start, byte_end=kept.byte_end,
                total_tokens=kept.total_tokens,
            )  # fmt: skip
            result.ids.extend(kept.ids)
        return response

    def Chunk(self, request: pb.ChunkRequest, context: grpc.ServicerContext) -> ChunkAnswer:
        # Not a message: chunk_answer.serialize_chunk_response writes its bytes a group of chunks at a time
        chunked = self._service.chunk(request.model, inputs(request.inputs), **_chunk_arguments(request), call=context)
        return ChunkAnswer(chunked.model, chunked.results)

    def ChunkStream(self, request: pb.ChunkRequest, context: grpc.ServicerContext) -> Iterator[pb.ChunkStreamResponse]:
        if len(request.inputs) != 1:
            raise not_one_stream_input(len(request.inputs))
        stream = self._service.chunk_stream(
            request.model, inputs(request.inputs)[0], **_chunk_arguments(request), call=context
        )
        message = pb.ChunkStreamResponse(model=model_version(stream.model))
        held = 0  # estimated bytes of `message`
        sent_at = 0.0  # the first chunk goes out at once
        try:
            for chunk in stream:
                add_chunks(message.chunks, (chunk,))
                held += 5 * len(chunk.ids) + 24
                if held >= STREAM_MESSAGE_BYTES or time.monotonic() - sent_at >= STREAM_MESSAGE_SECONDS:
                    yield message
                    message, held, sent_at = pb.ChunkStreamResponse(), 0, time.monotonic()
        except Exception as error:
            # A stream refused midway (a limit, a budget no cut meets) raises after the chunks made before it
            # (budgets.py `_pulled`); those this message holds go out before the error, not with it. Not when
            # the call is over (its deadline, its client gone): nobody could read them
            if held and not isinstance(error, (DeadlineExpired, CallCancelled)) and context.is_active():
                yield message
            raise
        if held or message.HasField("model"):
            yield message

    def DecodeStream(
        self, request_iterator: Iterable[pb.DecodeStreamRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.DecodeStreamResponse]:
        requests = iter(request_iterator)
        first = next(requests, None)
        if first is None:
            return
        session = self._service.decode_stream(
            first.model, errors=enum_value(first.errors, DECODE_ERRORS, "errors", pb.DecodeRequest.Errors), call=context
        )
        response = pb.DecodeStreamResponse(model=model_version(session.model))
        request: pb.DecodeStreamRequest | None = first
        index = 0
        while request is not None:
            if index:
                _same_as_first(request, first, index)
            response.text = session.feed(request.ids, flush=request.flush)
            response.pending = session.pending
            yield response
            response = pb.DecodeStreamResponse()
            request, index = next(requests, None), index + 1
        rest = session.flush()
        if rest:
            yield pb.DecodeStreamResponse(text=rest)


def _required(request: Any, field: str) -> int:
    if not request.HasField(field):
        raise InvalidRequest(field, f"{field} is required")
    return getattr(request, field)


def not_one_stream_input(count: int) -> InvalidRequest:
    """ChunkStream's refusal of a request without exactly one input (also from its wire bytes: batch_items.py)."""
    return InvalidRequest("inputs", f"ChunkStream takes exactly one input (got {count}); use Chunk for a batch")


def _chunk_arguments(request: pb.ChunkRequest) -> dict[str, Any]:
    return {
        "max_tokens": _required(request, "max_tokens"),
        "overlap": request.overlap,
        "prefer": enum_value(request.prefer, _PREFER, "prefer", pb.ChunkRequest.Prefer),
        "special": policy(request.special_tokens),
        "max_chunks": request.max_chunks if request.HasField("max_chunks") else None,
    }


def _same_as_first(request: pb.DecodeStreamRequest, first: pb.DecodeStreamRequest, index: int) -> None:
    for field in ("model", "errors"):
        value = getattr(request, field)
        if value and value != getattr(first, field):
            raise InvalidRequest(
                f"messages[{index}].{field}",
                f"{field} is set by the first message of a DecodeStream ({getattr(first, field)!r}); later messages "
                "leave it unset or repeat it",
            )
