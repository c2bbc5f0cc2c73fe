"""Load generation for the service benchmarks: open loop (fixed offered rate) and closed loop (fixed
concurrency) over asyncio, against tokend (gRPC, ``grpc.aio``) or the HTTP wrapper (``aiohttp``).

Open loop, without coordinated omission: request ``i`` is *scheduled* at ``start + i / rate`` whatever
happened to earlier ones, and its latency is measured from that scheduled instant to its answer. A
server (or this generator) that falls behind therefore shows up as latency, not as a lower rate
quietly offered. ``max_lag_s`` reports how late the generator itself was in sending; when it is large,
the generator — which shares the machine's cores with the server — was part of the bottleneck.

Closed loop: ``concurrency`` tasks each send the next request as soon as the previous one is answered
(the throughput benchmark: "at the same concurrency" for both servers).

Not handled: distributed load, HTTP/2 for the wrapper (uvicorn speaks HTTP/1.1), request bodies built
during the run (they are prepared up front so the generator spends its CPU on sending).

    result = asyncio.run(run_open_loop(lambda i: target.count(texts[i % len(texts)]), rate=500, duration=10))
    result.percentile(0.99), result.errors
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["Outcome", "LoadResult", "run_open_loop", "run_closed_loop", "percentile", "GrpcTarget", "HttpTarget"]

OK = "OK"


@dataclass(frozen=True)
class Outcome:
    """What one request returned: ``code`` ("OK", a gRPC status name, "HTTP 503", "timeout", …),
    tokens in the answer and input bytes sent."""

    code: str = OK
    tokens: int = 0
    input_bytes: int = 0


@dataclass
class LoadResult:
    offered_rps: float | None = None
    concurrency: int | None = None
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    codes: Counter[str] = field(default_factory=Counter)  # code -> requests
    tokens: int = 0
    input_bytes: int = 0
    max_lag_s: float = 0.0  # open loop: how late the generator sent its most late request

    @property
    def sent(self) -> int:
        return sum(self.codes.values())

    @property
    def ok(self) -> int:
        return self.codes[OK]

    @property
    def errors(self) -> int:
        return self.sent - self.ok

    @property
    def achieved_rps(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(sorted(self.latencies_s), q)

    def error_summary(self) -> str:
        return ", ".join(f"{code} ×{count}" for code, count in sorted(self.codes.items()) if code != OK) or "none"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of already sorted values; NaN when there are none.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.0
    """
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


async def run_open_loop(send: Callable[[int], Awaitable[Outcome]], *, rate: float, duration: float) -> LoadResult:
    """Send ``rate * duration`` requests at fixed intervals; ``send(i)`` makes request ``i``.

    Each request should carry its own deadline (the targets below do), so the wait for stragglers at
    the end is bounded by it.
    """
    loop = asyncio.get_running_loop()
    result = LoadResult(offered_rps=rate)
    total = max(1, int(rate * duration))
    pending: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        outcome = await _guarded(send, index)
        if outcome.code == OK:
            result.latencies_s.append(loop.time() - scheduled)
        _account(result, outcome)

    start = loop.time() + 0.02
    for index in range(total):
        scheduled = start + index / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            result.max_lag_s = max(result.max_lag_s, -delay)
        task = asyncio.create_task(one(index, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    result.wall_s = loop.time() - start
    return result


async def run_closed_loop(
    send: Callable[[int], Awaitable[Outcome]], *, concurrency: int, duration: float, max_requests: int | None = None
) -> LoadResult:
    """``concurrency`` tasks send back-to-back until ``duration`` seconds (or ``max_requests``) are used up."""
    loop = asyncio.get_running_loop()
    result = LoadResult(concurrency=concurrency)
    counter = itertools.count()
    started = loop.time()
    stop_at = started + duration

    async def client() -> None:
        while loop.time() < stop_at:
            index = next(counter)
            if max_requests is not None and index >= max_requests:
                return
            sent = loop.time()
            outcome = await _guarded(send, index)
            if outcome.code == OK:
                result.latencies_s.append(loop.time() - sent)
            _account(result, outcome)

    await asyncio.gather(*(client() for _ in range(concurrency)))
    result.wall_s = loop.time() - started
    return result


async def _guarded(send: Callable[[int], Awaitable[Outcome]], index: int) -> Outcome:
    try:
        return await send(index)
    except asyncio.TimeoutError:
        return Outcome("timeout")
    except Exception as exc:  # a load generator counts failures, it does not stop on them
        return Outcome(f"client {type(exc).__name__}")


def _account(result: LoadResult, outcome: Outcome) -> None:
    result.codes[outcome.code] += 1
    if outcome.code == OK:
        result.tokens += outcome.tokens
        result.input_bytes += outcome.input_bytes


class GrpcTarget:
    """tokend over ``grpc.aio``: ``connections`` separate TCP connections used in turn, because the
    kernel spreads *connections* (not calls) over the SO_REUSEPORT workers (see tokend_client's pool).

        target = GrpcTarget("127.0.0.1:50051")
        outcome = await target.count("hello")
        await target.close()
    """

    def __init__(self, address: str, *, connections: int = 8, timeout: float = 10.0, model: str = "cl100k_base") -> None:
        import grpc

        from tokend_api.v1 import tokenizer_pb2 as pb
        from tokend_api.v1 import tokenizer_pb2_grpc

        self._pb = pb
        self._grpc = grpc
        self.timeout = timeout
        self.model = model
        options = [
            ("grpc.use_local_subchannel_pool", 1),
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20),
        ]
        self._channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(connections)]
        self._stubs = [tokenizer_pb2_grpc.TokenizerStub(channel) for channel in self._channels]
        self._turn = itertools.count()
        self.workers: Counter[str] = Counter()  # tokend-worker pid -> answers seen by `spread`

    def _stub(self):
        return self._stubs[next(self._turn) % len(self._stubs)]

    def count_request(self, text: str):
        return self._pb.CountTokensRequest(model=self.model, inputs=[self._pb.Input(text=text)])

    def encode_request(self, texts: Sequence[str]):
        return self._pb.EncodeRequest(model=self.model, inputs=[self._pb.Input(text=text) for text in texts])

    async def count(self, request, input_bytes: int = 0) -> Outcome:
        try:
            response = await self._stub().CountTokens(request, timeout=self.timeout)
        except self._grpc.aio.AioRpcError as exc:
            return Outcome(exc.code().name)
        return Outcome(tokens=response.total, input_bytes=input_bytes)

    async def encode(self, request, input_bytes: int = 0) -> Outcome:
        try:
            response = await self._stub().Encode(request, timeout=self.timeout)
        except self._grpc.aio.AioRpcError as exc:
            return Outcome(exc.code().name)
        return Outcome(tokens=response.total_tokens, input_bytes=input_bytes)

    async def encode_ids(self, request) -> list[list[int]]:
        """The ids of one Encode (for the correctness check before a timed run)."""
        response = await self._stub().Encode(request, timeout=self.timeout)
        return [list(result.ids) for result in response.results]

    async def spread(self, request, calls: int) -> Counter[str]:
        """Send ``calls`` CountTokens over every connection and count the workers that answered."""
        for _ in range(calls):
            call = self._stub().CountTokens(request, timeout=self.timeout)
            await call
            for key, value in await call.initial_metadata() or ():
                if key == "tokend-worker":
                    self.workers[str(value)] += 1
        return self.workers

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


class HttpTarget:
    """The FastAPI/uvicorn tiktoken wrapper (bench/http_wrapper.py) over ``aiohttp`` keep-alive connections.

    Request bodies are JSON encoded up front (``count_body`` / ``encode_body``); answers are parsed in
    full, as a real caller must, which costs this (shared) machine the JSON decoding of every id.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0, model: str = "cl100k_base") -> None:
        import aiohttp

        self._aiohttp = aiohttp
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False), timeout=self._timeout
        )

    def count_body(self, text: str) -> bytes:
        import json

        return json.dumps({"model": self.model, "texts": [text]}).encode()

    def encode_body(self, texts: Sequence[str]) -> bytes:
        import json

        return json.dumps({"model": self.model, "texts": list(texts)}).encode()

    async def _post(self, path: str, body: bytes) -> tuple[str, dict]:
        headers = {"content-type": "application/json"}
        async with self._session.post(self.base_url + path, data=body, headers=headers) as response:
            payload = await response.json()
            return ("OK" if response.status == 200 else f"HTTP {response.status}"), payload

    async def count(self, body: bytes, input_bytes: int = 0) -> Outcome:
        code, payload = await self._post("/count", body)
        return Outcome(code, tokens=payload.get("total", 0) if code == OK else 0, input_bytes=input_bytes)

    async def encode(self, body: bytes, input_bytes: int = 0) -> Outcome:
        code, payload = await self._post("/encode", body)
        return Outcome(code, tokens=payload.get("total_tokens", 0) if code == OK else 0, input_bytes=input_bytes)

    async def encode_ids(self, body: bytes) -> list[list[int]]:
        code, payload = await self._post("/encode", body)
        if code != OK:
            raise RuntimeError(f"the HTTP wrapper answered {code}: {payload}")
        return payload["results"]

    async def close(self) -> None:
        await self._session.close()

