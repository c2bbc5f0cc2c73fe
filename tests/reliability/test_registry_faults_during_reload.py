"""Registry faults that strike while a refresh reloads (issue 13): the served models keep serving.

`tokend serve --registry http://127.0.0.1:PORT/ --reload-interval 0.3` (one worker) over a real HTTP server
(tests/support/slow_http.py) serving a registry directory with cl100k_base@1. While clients call `cl100k_base`,
`cl100k_base@1` and the health service, the registry fails under the refreshes in each way in turn: its catalog
(`index.json`) answers 500, never answers at all, or is garbage; then version 2 is published and its manifest, then
its payload, fail the same three ways while the refreshes load it (a version each: 2 to 7). Every call is answered from version 1 (never
INTERNAL, never a hang past its 3 s deadline), health stays SERVING, `cl100k_base@2` gets a status a client can act
on, and once the registry mends, `cl100k_base` moves to the new version.
"""

from __future__ import annotations

import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support.registries import build_registry, publish_openai
from support.server import start_server
from support.slow_http import TricklingServer

from tokend_api.v1 import tokenizer_pb2 as pb

pytestmark = pytest.mark.slow  # 9 faults of 2 s each, and 6 switches: ~30-40 s

FAULT_SECONDS = 2.0  # several refreshes (every 0.3 s) under each fault
KINDS = ("error", "hang", "garbage")


def _wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _count(stub, model: str) -> tuple[str, int]:
    try:
        answer = stub.CountTokens(pb.CountTokensRequest(model=model, inputs=[pb.Input(text="hello world")]), timeout=3)
        return ("OK", answer.model.version)
    except grpc.RpcError as error:
        return (error.code().name, 0)


class _Callers:
    """Clients calling `cl100k_base`, `cl100k_base@1` and the health service without pause, outcomes kept."""

    def __init__(self, server) -> None:
        self.stub = server.stub()
        self.health = health_pb2_grpc.HealthStub(server.channel())
        self.outcomes: list[tuple[str, str, int]] = []  # (what, status, version)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._call, args=(what,)) for what in
                         ("cl100k_base", "cl100k_base@1", "health")]

    def _call(self, what: str) -> None:
        while not self._stop.is_set():
            if what == "health":
                try:
                    status = self.health.Check(health_pb2.HealthCheckRequest(service="tokend.v1.Tokenizer"), timeout=3)
                    outcome = ("SERVING" if status.status == health_pb2.HealthCheckResponse.SERVING else "NOT_SERVING", 0)
                except grpc.RpcError as error:
                    outcome = (error.code().name, 0)
            else:
                outcome = _count(self.stub, what)
            self.outcomes.append((what, *outcome))
            time.sleep(0.02)

    def __enter__(self) -> _Callers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def test_faults_while_a_refresh_reloads_leave_the_served_version_serving(tmp_path) -> None:
    from tokend.registry import Registry

    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    with TricklingServer(root) as origin, start_server(
        registry=origin.url, metrics=False, reload_interval=0.3, env={"XDG_CACHE_HOME": str(tmp_path / "cache")}
    ) as server, _Callers(server) as callers:
        stub = server.stub()
        assert _count(stub, "cl100k_base") == ("OK", 1)
        for kind in KINDS:  # the catalog fails under the refreshes
            origin.fault("index.json", kind)
            time.sleep(FAULT_SECONDS)
            origin.release()
        catalog_faults = len(callers.outcomes)
        pinned: dict[str, str] = {}
        version = 1
        for file in ("manifest.json", "ranks.tiktoken.gz"):
            for kind in KINDS:  # a new version's file fails while the refreshes load it
                version += 1
                origin.fault(f"cl100k_base/{version}/{file}", kind)
                publish_openai(Registry.open(root), "cl100k_base",
                               special_tokens={"<|endoftext|>": 100257, f"<|v{version}|>": 100300 + version})
                time.sleep(FAULT_SECONDS)
                pinned[f"{file} {kind}"] = _count(stub, f"cl100k_base@{version}")[0]
                assert _count(stub, "cl100k_base") == ("OK", version - 1), (file, kind)  # latest stays
                origin.release()  # the registry mends: the version loads, verifies, and only then is latest
                _wait_for(lambda: _count(stub, "cl100k_base") == ("OK", version), 60, f"latest to move to {version}")
        assert _count(stub, f"cl100k_base@{version}") == ("OK", version)

    outcomes = callers.outcomes
    statuses = {(what, status, version) for what, status, version in outcomes}
    assert len(outcomes) > 60, len(outcomes)  # the callers kept calling through every fault
    # Before version 2 loaded: each call answered from version 1; health never wavered.
    assert {(w, s, v) for w, s, v in outcomes[:catalog_faults]} <= {
        ("cl100k_base", "OK", 1), ("cl100k_base@1", "OK", 1), ("health", "SERVING", 0)}, statuses
    assert statuses <= {("cl100k_base", "OK", v) for v in range(1, 8)} | {("cl100k_base@1", "OK", 1),
                                                                          ("health", "SERVING", 0)}, statuses
    # A call for the failing version gets a status a client can act on (its 3 s deadline bounds the wait for the
    # load: DEADLINE_EXCEEDED), never INTERNAL, never an answer from another version.
    assert set(pinned.values()) <= {"UNAVAILABLE", "FAILED_PRECONDITION", "DEADLINE_EXCEEDED"}, pinned
    assert not server.events("worker_died"), server.stderr_text()
    assert server.events("registry_refresh_failed") or server.events("registry_refreshed")
    print(f"{len(outcomes)} calls and checks through the faults; @2 during its faults: {pinned}")
