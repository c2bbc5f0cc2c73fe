"""The asyncio forms of `RemoteEncoding.decoder()`'s two decoders (see `_stream_decoders` for the choice):
`feed` and `flush` are coroutines in both, so one `await decoder.feed(ids)` works whichever was chosen.

    decoder = await enc.decoder()
    text = await decoder.feed(ids)
    rest = await decoder.flush()
    await decoder.close()
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import grpc
import grpc.aio
from tokend_api.v1 import tokenizer_pb2 as pb

from ._exceptions import ProtocolError
from ._stream_decoders import TableStreamDecoder, TokenTable, check_errors, stream_errors, stream_exception

__all__ = ["AsyncTableStreamDecoder", "AsyncRemoteStreamDecoder"]


class AsyncTableStreamDecoder:
    """`TableStreamDecoder` with coroutine methods (the work itself never waits)."""

    def __init__(self, table: TokenTable, errors: str = "replace") -> None:
        self._decoder = TableStreamDecoder(table, errors)
        self.errors = errors

    async def feed(self, ids: int | Iterable[int]) -> str:
        return self._decoder.feed(ids)

    async def flush(self) -> str:
        return self._decoder.flush()

    @property
    def pending(self) -> bytes:
        return self._decoder.pending

    async def close(self) -> None:
        """Nothing to release."""

    async def __aenter__(self) -> AsyncTableStreamDecoder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class AsyncRemoteStreamDecoder:
    """Incremental decoding on the server over one grpc.aio DecodeStream (opened at the first `feed`)."""

    def __init__(self, stub_factory: Any, ref: str, expect: tuple[str, int], errors: str = "replace") -> None:
        self.errors = check_errors(errors)
        self._wire_errors = stream_errors(errors)
        self._stub_factory = stub_factory
        self._ref = ref
        self._expect = expect
        self._lock = asyncio.Lock()
        self._call: Any = None
        self._pending = b""

    async def feed(self, ids: int | Iterable[int]) -> str:
        tokens = [ids] if isinstance(ids, int) else list(ids)
        return await self._exchange(pb.DecodeStreamRequest(ids=tokens))

    async def flush(self) -> str:
        if self._call is None:
            return ""
        return await self._exchange(pb.DecodeStreamRequest(flush=True))

    @property
    def pending(self) -> bytes:
        return self._pending

    def __del__(self) -> None:
        call = getattr(self, "_call", None)
        if call is not None:
            call.cancel()  # a decoder dropped without close(): free the server's stream slot

    async def close(self) -> None:
        """End the stream (what is still held back is dropped; `flush()` first to have it)."""
        async with self._lock:
            await self._end_stream()

    async def __aenter__(self) -> AsyncRemoteStreamDecoder:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _exchange(self, request: pb.DecodeStreamRequest) -> str:
        async with self._lock:
            if self._call is None:
                request.model, request.errors = self._ref, self._wire_errors
                self._call = self._stub_factory().DecodeStream()  # no deadline: a generation may be long
            try:
                await self._call.write(request)
                response = await self._call.read()
            except grpc.RpcError as error:
                pending = self._pending
                await self._end_stream(cancel=True)
                raise stream_exception(error, self._ref, pending) from error
            if response is grpc.aio.EOF:  # (read() raises the status of a stream that ended in an error)
                await self._end_stream(cancel=True)
                raise ProtocolError("DecodeStream ended without answering a request; the server is broken")
            if response.HasField("model") and (response.model.name, response.model.version) != self._expect:
                await self._end_stream(cancel=True)
                raise ProtocolError(f"DecodeStream was answered by {response.model.name}@{response.model.version}")
            self._pending = response.pending
            return response.text

    async def _end_stream(self, *, cancel: bool = False) -> None:
        call, self._call, self._pending = self._call, None, b""
        if call is None:
            return
        if cancel:
            call.cancel()
            return
        try:
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                pass  # the server's last flush, if anything was held back
        except grpc.RpcError:
            pass  # closing: a late error has nobody to go to

