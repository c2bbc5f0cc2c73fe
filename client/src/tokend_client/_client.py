"""`TokendClient`: a blocking client for a tokend service, and the factory of `RemoteEncoding`s.

    with TokendClient("localhost:50051") as client:
        enc = client.get_encoding("cl100k_base")     # pinned to the exact version that answered
        enc.encode("hello world")                     # [15339, 1917]

One client holds a small pool of connections (see `_channel_pool`) and is safe to share between threads;
create it once per process. Every RPC has a deadline (`timeout`, seconds per RPC); UNAVAILABLE is retried
with backoff by gRPC itself (`retries`), and a call whose server went away mid-answer is re-sent by the
client (`_error_mapping.lost_its_server`). Batches of any length are split under the server's limits
(`_batching`), sent concurrently over the pool and put back in order.

The streamed RPCs (ChunkStream, DecodeStream) are used by `RemoteEncoding.iter_chunks` and
`decoder(mode="stream")` straight over the pool (`_remote_budgets`, `_stream_decoders`); they are not
re-sent when their server goes away mid-stream.

Not handled: per-call credentials; the client does not watch health (calls fail over with round_robin +
retries instead).
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any, Unpack

import grpc
from tokend_api.v1 import tokenizer_pb2 as pb

from ._batching import BatchPlan, Chunk
from ._channel_pool import ChannelPool
from ._client_base import ClientBase
from ._client_settings import ClientOptions
from ._error_mapping import exception_for, lost_its_server, raise_or_requeue
from ._models import ModelDetails, ModelSummary
from ._operations import Operation
from ._remote_encoding import RemoteEncoding


class TokendClient(ClientBase):
    """A connection pool to one tokend target and the RPCs over it; a context manager.

    Args:
        target: a gRPC target: `"host:port"`, `"dns:///tokend.ns.svc:50051"` (a headless Service:
            calls go round-robin to every pod), `"ipv4:10.0.0.1:50051,10.0.0.2:50051"`.
        timeout: the deadline of every RPC, in seconds.
        tls: False (plaintext), True (TLS, system roots) or `grpc.ssl_channel_credentials(...)`
            (own CA, mutual TLS).
        compression: None, "gzip" or "deflate" for requests.
        retries: retries of a call that got UNAVAILABLE, with exponential backoff (0-4).
        connections: connections (channels) in the pool; calls are spread over them so every worker
            process of a server gets work.
        max_batch_items / max_request_bytes: the server's limits (DEVELOPERS.md defaults); a server with
            smaller ones is learned from its RESOURCE_EXHAUSTED answers.
        max_message_bytes: the largest message sent or received (the server's --max-message-bytes).
        options: extra gRPC channel options; they replace ours with the same key.

        with TokendClient("localhost:50051", timeout=5) as client:
            print([model.name for model in client.list_models()])
    """

    def __init__(self, target: str, **options: Unpack[ClientOptions]) -> None:
        super().__init__(target, **options)
        settings = self._settings

        def make_channel() -> grpc.Channel:
            if settings.credentials is None:
                return grpc.insecure_channel(settings.target, settings.options, settings.compression)
            return grpc.secure_channel(settings.target, settings.credentials, settings.options, settings.compression)

        self._pool: ChannelPool[grpc.Channel] = ChannelPool(make_channel, size=settings.connections)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> TokendClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every connection; calls in flight are cancelled. Idempotent."""
        if not self._closed:
            self._closed = True
            for channel in self._pool.channels:
                channel.close()

    # -- public API --------------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        """Every model the server knows: names, versions (ascending), latest version, aliases."""
        response = self._unary("ListModels", pb.ListModelsRequest())
        return [ModelSummary.from_proto(model) for model in response.models]

    def get_model(self, ref: str) -> ModelDetails:
        """One exact model version: `"name"` (latest), `"name@7"` or `"name@alias"`.

        Raises ModelNotFoundError (a ValueError) listing what the server has.
        """
        response = self._unary("GetModel", pb.GetModelRequest(model=_ref(ref)), ref=ref)
        return ModelDetails.from_proto(response.details)

    def get_encoding(self, ref: str) -> RemoteEncoding:
        """A `RemoteEncoding` for `ref`, pinned to the exact version the server resolves it to now.

        Pinning keeps one Encoding object consistent (its `n_vocab` and special tokens always describe
        the model that encodes); to follow a moving alias or "latest", call `get_encoding` again.

            enc = client.get_encoding("cl100k_base")
            enc.version  # e.g. 1
        """
        return RemoteEncoding(self, self.get_model(ref))

    # -- transport (used by RemoteEncoding) --------------------------------------------------------

    def _record_worker(self, call: Any) -> None:
        try:
            self._worker_calls.record(call.initial_metadata())
        except Exception:  # metadata is diagnostic only; never fail a call over it
            pass

    def _unary(self, method: str, request: Any, *, ref: str | None = None) -> Any:
        resends = 0
        while True:
            stub = self._pool.stub()
            try:
                response, call = getattr(stub, method).with_call(request, timeout=self._settings.timeout)
            except grpc.RpcError as error:
                if lost_its_server(error) and resends < self._settings.retries:
                    resends += 1
                    continue
                raise exception_for(error, ref=ref) from error
            self._record_worker(call)
            return response

    def _run_batch(
        self, operation: Operation, inputs: Sequence[Any], sizes: Sequence[int], *, ref: str, batch_call: bool
    ) -> list[Any]:
        """Send `inputs` in as many requests as the limits need, concurrently; results in input order."""
        plan = BatchPlan(sizes, self._settings.limits, parallelism=self._settings.connections)
        completed: queue.SimpleQueue[Chunk] = queue.SimpleQueue()
        futures: dict[Chunk, Any] = {}
        try:
            while not plan.done:
                if plan.in_flight == 0 and plan.pending == 1:
                    self._send_alone(plan, operation, inputs, ref=ref, batch_call=batch_call)
                    continue
                while plan.in_flight < self._settings.max_in_flight:
                    chunk = plan.take()
                    if chunk is None:
                        break
                    stub_method = getattr(self._pool.stub(), operation.method)
                    future = stub_method.future(
                        operation.request(inputs[chunk.start : chunk.stop]), timeout=self._settings.timeout
                    )
                    futures[chunk] = future
                    future.add_done_callback(lambda _, chunk=chunk: completed.put(chunk))
                chunk = completed.get()
                future = futures.pop(chunk)
                try:
                    response = future.result()
                except grpc.RpcError as error:
                    raise_or_requeue(
                        plan, chunk, error, ref=ref, batch_call=batch_call, resend_budget=self._settings.retries
                    )
                    continue
                self._record_worker(future)
                plan.complete(chunk, operation.results(response, expected_items=len(chunk)))
        finally:
            for future in futures.values():  # only left when we are raising
                future.cancel()
        return plan.results

    def _send_alone(self, plan: BatchPlan, operation: Operation, inputs: Sequence[Any], *, ref: str, batch_call: bool) -> None:
        # The only request left and nothing in flight (every call of one text or one small batch, and the
        # last part of a split one): a blocking call. A future would start a channel-spin thread for it,
        # ~0.3 ms of CPU, as much as the call itself.
        chunk = plan.take()
        assert chunk is not None
        stub_method = getattr(self._pool.stub(), operation.method)
        try:
            response, call = stub_method.with_call(
                operation.request(inputs[chunk.start : chunk.stop]), timeout=self._settings.timeout
            )
        except grpc.RpcError as error:
            raise_or_requeue(plan, chunk, error, ref=ref, batch_call=batch_call, resend_budget=self._settings.retries)
            return
        self._record_worker(call)
        plan.complete(chunk, operation.results(response, expected_items=len(chunk)))


def _ref(ref: str) -> str:
    if not isinstance(ref, str) or not ref:
        raise TypeError(f"a model reference is a non-empty str like 'cl100k_base' or 'name@7', got {ref!r}")
    return ref
