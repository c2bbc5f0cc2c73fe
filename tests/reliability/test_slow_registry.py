"""A slow HTTP registry cannot hang the server: a new version that trickles in is never switched to early,
calls for it wait a bounded time, and everything else keeps flowing.

`tokend serve --registry http://127.0.0.1:PORT/` (one worker: 32 handler threads) over a real HTTP server
(tests/support/slow_http.py) serving a registry directory with cl100k_base@1. While it serves, cl100k_base@2
is published and its payload trickles out at one byte per 0.2 s — every read well inside urlopen's per-read
timeout. Thirty calls ask for cl100k_base@2 itself while other clients call `cl100k_base` (latest) and the
health service. (Before: latest switched to the unloaded version, calls waited on its load without a
deadline, 30 of them filled every handler thread, and 0 of 20 calls for loaded models or health passed.)
"""

from __future__ import annotations

import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.registries import build_registry, publish_openai
from support.server import start_server
from support.slow_http import TricklingServer

from tokend_api.v1 import tokenizer_pb2 as pb

SLOW_CALLS = 30
WELL_BEHAVED_CALLS = 20


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_trickling_new_version_never_stalls_the_server(tmp_path) -> None:
    from tokend.registry import Registry

    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    with TricklingServer(root, byte_interval=0.2) as origin, start_server(
        registry=origin.url, metrics=False, reload_interval=0.3, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    ) as server:
        stub = server.stub()
        health = health_pb2_grpc.HealthStub(server.channel())
        origin.slow("cl100k_base/2/ranks.tiktoken.gz")
        publish_openai(Registry.open(root), "cl100k_base", special_tokens={"<|endoftext|>": 100257})
        _wait_for(
            lambda: 2 in stub.ListModels(pb.ListModelsRequest(), timeout=5).models[0].versions, 30, "the worker to see v2"
        )

        slow_outcomes: list[tuple[str, float, str]] = []
        lock = threading.Lock()

        def ask_for_the_slow_version() -> None:
            started = time.monotonic()
            request = pb.CountTokensRequest(model="cl100k_base@2", inputs=[pb.Input(text="hello world")])
            try:
                stub.CountTokens(request, timeout=20)
                outcome, details = "OK", ""
            except grpc.RpcError as error:
                outcome, details = error.code().name, error.details() or ""
            with lock:
                slow_outcomes.append((outcome, time.monotonic() - started, details))

        slow_callers = [threading.Thread(target=ask_for_the_slow_version) for _ in range(SLOW_CALLS)]
        for caller in slow_callers:
            caller.start()
        time.sleep(0.5)  # the slow calls are in: now the well-behaved clients
        latest, checks = [], []
        for _ in range(WELL_BEHAVED_CALLS):
            try:
                response = stub.CountTokens(
                    pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=3
                )
                latest.append((response.model.version, response.total))
            except grpc.RpcError as error:
                latest.append((error.code().name, error.details()))
            try:
                checks.append(health.Check(health_pb2.HealthCheckRequest(service="tokend.v1.Tokenizer"), timeout=3).status)
            except grpc.RpcError as error:
                checks.append(error.code().name)
        for caller in slow_callers:
            caller.join(30)

        assert latest == [(1, 2)] * WELL_BEHAVED_CALLS, latest  # latest stays on the verified version
        assert checks == [health_pb2.HealthCheckResponse.SERVING] * WELL_BEHAVED_CALLS, checks
        codes = sorted({outcome for outcome, _, _ in slow_outcomes})
        assert codes == ["UNAVAILABLE"], slow_outcomes[:3]  # retryable; never INTERNAL or a hang
        assert all("still loading" in details for _, _, details in slow_outcomes), slow_outcomes[:3]
        longest = max(seconds for _, seconds, _ in slow_outcomes)
        assert longest < 10, f"a call for the loading version took {longest:.1f} s"  # waits <= 5 s (REQUEST_LOAD_WAIT)
        assert origin.trickles_started == 1, origin.trickles_started  # one load for all the callers

        # The mirror recovers: the load finishes, verifies, and only then does latest move.
        origin.release()
        _wait_for(
            lambda: stub.CountTokens(
                pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=5
            ).model.version == 2,
            30,
            "latest to switch to version 2",
        )
        assert not server.events("worker_died"), server.stderr_text()
    print(
        f"slow calls: {len(slow_outcomes)} UNAVAILABLE, longest {longest:.2f} s; "
        f"{WELL_BEHAVED_CALLS} latest calls and health checks all served"
    )


def test_a_wait_for_a_loading_version_ends_at_the_call_deadline(tmp_path) -> None:
    """Two calls with a 0.3 s deadline for a version still loading leave at their deadline; before, they held the
    worker's two places for load waiters for REQUEST_LOAD_WAIT_SECONDS (5 s), and a third call a moment later was
    refused at once (UNAVAILABLE, "... calls already wait for loads"). Now it takes a place and waits until its own
    deadline."""
    from tokend.registry import Registry

    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    with TricklingServer(root, byte_interval=0.2) as origin, start_server(
        registry=origin.url, metrics=False, reload_interval=0.3, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    ) as server:
        stub = server.stub()
        origin.slow("cl100k_base/2/ranks.tiktoken.gz")
        publish_openai(Registry.open(root), "cl100k_base", special_tokens={"<|endoftext|>": 100257})
        _wait_for(lambda: origin.trickles_started == 1, 30, "the worker to start loading v2")

        def call(timeout: float, outcomes: list) -> None:
            request = pb.CountTokensRequest(model="cl100k_base@2", inputs=[pb.Input(text="hello world")])
            try:
                stub.CountTokens(request, timeout=timeout)
                outcomes.append(("OK", ""))
            except grpc.RpcError as error:
                outcomes.append((error.code().name, error.details() or ""))

        short: list = []
        callers = [threading.Thread(target=call, args=(0.3, short)) for _ in range(2)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(30)
        assert [code for code, _ in short] == ["DEADLINE_EXCEEDED"] * 2, short
        time.sleep(0.3)  # the server's handlers see the deadlines pass as the clients do, give or take the transit
        third: list = []
        call(1.5, third)
        assert third[0][0] == "DEADLINE_EXCEEDED", third  # it waited in a place the short calls left
        origin.release()
        assert not server.events("worker_died"), server.stderr_text()
