"""`AsyncTokendClient`: `TokendClient` for asyncio (grpc.aio), with the same arguments and surface.

    async with AsyncTokendClient("localhost:50051") as client:
        models = await client.list_models()
        enc = await client.get_encoding("cl100k_base")
        counts = await enc.count_batch(texts)

It may be created anywhere (at import time, outside any loop): its channels are opened on first use, in
the running event loop, and belong to that loop from then on (a grpc.aio rule); using the client from
another loop raises a RuntimeError that says so — create one client per event loop. Batched calls send
their requests as concurrent tasks over the pool and put the answers back in order; everything else
(deadlines, retries, round_robin, connection pool, limits, errors) is shared with the blocking client.

Not handled: use from several event loops; sharing one client between threads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Unpack

import grpc
import grpc.aio
from tokend_api.v1 import tokenizer_pb2 as pb

from ._batching import BatchPlan, Chunk
from ._channel_pool import ChannelPool
from ._client import _ref
from ._client_base import ClientBase
from ._client_settings import ClientOptions
from ._error_mapping import exception_for, lost_its_server, raise_or_requeue
from ._models import ModelDetails, ModelSummary
from ._operations import Operation
from ._async_remote_encoding import AsyncRemoteEncoding


class AsyncTokendClient(ClientBase):
    """An asyncio connection pool to one tokend target; an async context manager.

    Arguments are those of `TokendClient`.
    """

    def __init__(self, target: str, **options: Unpack[ClientOptions]) -> None:
        super().__init__(target, **options)
        self._pool: ChannelPool[grpc.aio.Channel] | None = None  # opened on first use, in the running loop
        self._loop: asyncio.AbstractEventLoop | None = None

    def _channels(self) -> ChannelPool[grpc.aio.Channel]:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError("this AsyncTokendClient is closed; create a new one")
        if self._pool is None:
            settings = self._settings

            def make_channel() -> grpc.aio.Channel:
                if settings.credentials is None:
                    return grpc.aio.insecure_channel(settings.target, settings.options, settings.compression)
                return grpc.aio.secure_channel(
                    settings.target, settings.credentials, settings.options, settings.compression
                )

            self._pool, self._loop = ChannelPool(make_channel, size=settings.connections), loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this AsyncTokendClient was first used in another event loop and grpc.aio channels cannot move "
                "between loops; create one client per event loop (e.g. inside the coroutine asyncio.run runs)"
            )
        return self._pool

    async def __aenter__(self) -> AsyncTokendClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; calls in flight are cancelled. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._pool is not None:
                await asyncio.gather(*(channel.close() for channel in self._pool.channels))

    async def list_models(self) -> list[ModelSummary]:
        response = await self._unary("ListModels", pb.ListModelsRequest())
        return [ModelSummary.from_proto(model) for model in response.models]

    async def get_model(self, ref: str) -> ModelDetails:
        response = await self._unary("GetModel", pb.GetModelRequest(model=_ref(ref)), ref=ref)
        return ModelDetails.from_proto(response.details)

    async def get_encoding(self, ref: str) -> AsyncRemoteEncoding:
        """An `AsyncRemoteEncoding` pinned to the exact version `ref` resolves to now."""
        return AsyncRemoteEncoding(self, await self.get_model(ref))

    # -- transport ---------------------------------------------------------------------------------

    async def _call(self, method: str, request: Any) -> Any:
        call = getattr(self._channels().stub(), method)(request, timeout=self._settings.timeout)
        response = await call
        try:
            self._worker_calls.record(await call.initial_metadata())
        except Exception:  # diagnostic only
            pass
        return response

    async def _unary(self, method: str, request: Any, *, ref: str | None = None) -> Any:
        resends = 0
        while True:
            try:
                return await self._call(method, request)
            except grpc.RpcError as error:
                if lost_its_server(error) and resends < self._settings.retries:
                    resends += 1
                    continue
                raise exception_for(error, ref=ref) from error

    async def _run_batch(
        self, operation: Operation, inputs: Sequence[Any], sizes: Sequence[int], *, ref: str, batch_call: bool
    ) -> list[Any]:
        """Send `inputs` in as many requests as the limits need, as concurrent tasks; results in order."""
        plan = BatchPlan(sizes, self._settings.limits, parallelism=self._settings.connections)
        tasks: dict[asyncio.Future[Any], Chunk] = {}
        try:
            while not plan.done:
                while plan.in_flight < self._settings.max_in_flight:
                    chunk = plan.take()
                    if chunk is None:
                        break
                    request = operation.request(inputs[chunk.start : chunk.stop])
                    tasks[asyncio.ensure_future(self._call(operation.method, request))] = chunk
                finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    chunk = tasks.pop(task)
                    try:
                        response = task.result()
                    except grpc.RpcError as error:
                        raise_or_requeue(
                            plan, chunk, error, ref=ref, batch_call=batch_call,
                            resend_budget=self._settings.retries,
                        )
                        continue
                    plan.complete(chunk, operation.results(response, expected_items=len(chunk)))
        finally:
            for task in tasks:  # only left when we are raising
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
        return plan.results
