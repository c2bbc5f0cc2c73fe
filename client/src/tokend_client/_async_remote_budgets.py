"""Token budgets on `AsyncRemoteEncoding`: the methods of `_remote_budgets`, as coroutines.

    offsets = await enc.encode_with_offsets("hi 🤖")
    kept = await enc.truncate(document, 8000)
    chunks = await enc.chunk(document, 512, overlap=64)
    async for chunk in await enc.iter_chunks(book, 512): ...     # ChunkStream
    decoder = await enc.decoder(); text = await decoder.feed(ids)

`iter_chunks` is a coroutine that returns an async iterator once the stream has answered (so argument and
request errors are raised by the `await`, as the engine raises them by the call).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Literal

import grpc
from tokend_api.policy_message import to_message

from ._async_stream_decoders import AsyncRemoteStreamDecoder, AsyncTableStreamDecoder
from ._budget_operations import (
    PreparedTexts,
    check_chunk_arguments,
    check_truncate_arguments,
    chunk_operation,
    chunk_request,
    offsets_operation,
    read_chunks,
    token_offsets,
    truncate_operation,
    truncation,
)
from ._budget_results import Chunk, TokenOffsets, Truncation
from ._error_mapping import exception_for
from ._exceptions import ProtocolError
from ._remote_budgets import AllowedSpecial, DisallowedSpecial, Prefer, _check_size, _check_version, _local_mode
from ._stream_decoders import TokenTable, TokenTableBuilder, TokenTableSparse, check_errors

if TYPE_CHECKING:
    from ._async_client import AsyncTokendClient


class AsyncRemoteBudgetMethods:
    """Mixin of `AsyncRemoteEncoding` (which provides `_client`, `_ref`, `_expect`, `_run`, `details`)."""

    _client: AsyncTokendClient
    _ref: str
    _expect: tuple[str, int]

    def __init__(self, details: object) -> None:
        super().__init__(details)  # type: ignore[call-arg]
        self._table: TokenTable | None = None
        self._table_lock: asyncio.Lock | None = None  # made in the event loop, at first use

    async def encode_with_offsets(
        self, text: str, *, allowed_special: AllowedSpecial = frozenset(), disallowed_special: DisallowedSpecial = "all"
    ) -> TokenOffsets:
        texts = PreparedTexts([text])
        operation = offsets_operation(self._ref, to_message(allowed_special, disallowed_special), self._expect)
        ids, offsets = (await self._run(operation, texts.prepared(), batch_call=False))[0]  # type: ignore[attr-defined]
        return token_offsets(ids, offsets, texts.maps[0])

    async def truncate(
        self,
        text: str,
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> Truncation:
        return (await self._truncate([text], max_tokens, side, allowed_special, disallowed_special, batch_call=False))[0]

    async def truncate_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        side: Literal["right", "left"] = "right",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
    ) -> list[Truncation]:
        return await self._truncate(texts, max_tokens, side, allowed_special, disallowed_special, batch_call=True)

    async def _truncate(self, texts, max_tokens, side, allowed_special, disallowed_special, *, batch_call):
        check_truncate_arguments(max_tokens, side)
        prepared = PreparedTexts(texts)
        operation = truncate_operation(
            self._ref, to_message(allowed_special, disallowed_special), max_tokens, side, self._expect
        )
        results = await self._run(operation, prepared.prepared(), batch_call=batch_call)  # type: ignore[attr-defined]
        return [truncation(message, characters) for message, characters in zip(results, prepared.maps)]

    async def chunk(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> list[Chunk]:
        return (
            await self._chunk(
                [text], max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, batch_call=False
            )
        )[0]

    async def chunk_batch(
        self,
        texts: Sequence[str],
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> list[list[Chunk]]:
        return await self._chunk(
            texts, max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, batch_call=True
        )

    async def _chunk(self, texts, max_tokens, overlap, prefer, allowed_special, disallowed_special, max_chunks, *, batch_call):
        check_chunk_arguments(max_tokens, overlap, prefer, max_chunks)
        prepared = PreparedTexts(texts)
        policy = to_message(allowed_special, disallowed_special)
        operation = chunk_operation(self._ref, policy, max_tokens, overlap, prefer, max_chunks, self._expect)
        results = await self._run(operation, prepared.prepared(), batch_call=batch_call)  # type: ignore[attr-defined]
        return [read_chunks(messages, characters) for messages, characters in zip(results, prepared.maps)]

    async def iter_chunks(
        self,
        text: str,
        max_tokens: int,
        overlap: int = 0,
        prefer: Prefer = "paragraph",
        *,
        allowed_special: AllowedSpecial = frozenset(),
        disallowed_special: DisallowedSpecial = "all",
        max_chunks: int | None = None,
    ) -> AsyncIterator[Chunk]:
        check_chunk_arguments(max_tokens, overlap, prefer, max_chunks)
        prepared = PreparedTexts([text])
        _check_size(prepared.sizes[0], self._client.limits.max_bytes)
        request = chunk_request(
            self._ref, to_message(allowed_special, disallowed_special), prepared.inputs, max_tokens, overlap, prefer,
            max_chunks,
        )  # fmt: skip
        call = self._client._channels().stub().ChunkStream(request, timeout=self._client._settings.timeout)
        try:
            first = await call.read()
        except grpc.RpcError as error:
            raise exception_for(error, ref=self._ref) from error
        if first is grpc.aio.EOF:
            raise ProtocolError("ChunkStream ended without a message; the server is broken")
        _check_version("ChunkStream", first, self._expect)
        return _chunks(call, first, prepared.maps[0], self._ref)

    async def decoder(self, errors: str = "replace", *, mode: Literal["auto", "local", "stream"] = "auto"):
        """`RemoteEncoding.decoder` for asyncio: the decoder's `feed`, `flush` and `close` are coroutines."""
        check_errors(errors)
        if _local_mode(mode, self.details):  # type: ignore[attr-defined]
            table = await self._token_table(required=mode == "local")
            if table is not None:
                return AsyncTableStreamDecoder(table, errors)
        return AsyncRemoteStreamDecoder(self._client._channels().stub, self._ref, self._expect, errors)

    async def _token_table(self, *, required: bool) -> TokenTable | None:
        if self._table_lock is None:
            self._table_lock = asyncio.Lock()
        async with self._table_lock:
            if self._table is None:
                builder = TokenTableBuilder(self.max_token_value + 1)  # type: ignore[attr-defined]
                try:
                    while (ids := builder.next_ids()) is not None:
                        try:
                            builder.received(await self.decode_tokens_bytes(ids))  # type: ignore[attr-defined]
                        except KeyError as error:
                            builder.unknown(getattr(error, "item", None))
                except TokenTableSparse as sparse:
                    if required:
                        raise ValueError(f"mode='local' is not possible for {self._ref}: {sparse}") from None
                    return None
                self._table = builder.build()
            return self._table


async def _chunks(call, first, characters, ref) -> AsyncIterator[Chunk]:
    try:
        for chunk in read_chunks(first.chunks, characters):
            yield chunk
        while (response := await call.read()) is not grpc.aio.EOF:
            for chunk in read_chunks(response.chunks, characters):
                yield chunk
    except grpc.RpcError as error:
        raise exception_for(error, ref=ref) from error
    finally:
        call.cancel()
