"""A version that does not load when a worker starts (its payload damaged on disk) costs only that version:
the worker serves every other model. Before, a worker that could not load one configured model exited
(code 4) and the supervisor restarted it in a loop, so once a worker died for any reason (an OOM kill) an
intact model beside a damaged one was UNAVAILABLE for good (issue 13's hostile round 3, repro_8).

Registry: cl100k_base@1 and o200k_base@1 (a real directory); the oracle for the intact model is tiktoken."""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest
import tiktoken
from support.registries import build_registry, corrupt_payload
from support.server import start_server

from tokend.registry import Registry
from tokend.service import InvalidRequest, ServedModels
from tokend_api.v1 import tokenizer_pb2 as pb

TEXT = "Hello, damaged registry: the others keep serving."


def _count_code(server, model: str) -> str:
    try:
        server.stub().CountTokens(pb.CountTokensRequest(model=model, inputs=[pb.Input(text=TEXT)]), timeout=10)
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


def _encode(server, model: str) -> list[int]:
    return list(server.stub().Encode(pb.EncodeRequest(model=model, inputs=[pb.Input(text=TEXT)]), timeout=10).results[0].ids)


def test_a_restarted_worker_serves_the_intact_models_beside_a_damaged_one(tmp_path):
    root = build_registry(tmp_path / "registry", ["cl100k_base", "o200k_base"])
    with start_server(registry=root, workers=1, metrics=False) as server:
        corrupt_payload(root / "cl100k_base" / "1")
        assert _count_code(server, "cl100k_base") == "OK"  # the verified copy in memory
        died = server.worker_pids()[0]
        os.kill(died, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not server.replaced(died):
            assert time.monotonic() < deadline, server.stderr_text()[-3000:]
            time.sleep(0.2)
        assert _encode(server, "o200k_base") == tiktoken.get_encoding("o200k_base").encode(TEXT)
        assert server.health_status() == "SERVING"
        assert _count_code(server, "cl100k_base") == "FAILED_PRECONDITION"
        unavailable = server.events("model_unavailable")
        assert [event["model"] for event in unavailable] == ["cl100k_base"], unavailable
        assert unavailable[0]["error"].startswith("ChecksumMismatchError: SHA-256 mismatch for payload"), unavailable[0]
        assert not [event for event in server.events("worker_died") if event.get("worker_pid") != died]


def test_a_worker_that_can_load_no_configured_model_still_refuses_to_serve(tmp_path):
    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    corrupt_payload(root / "cl100k_base" / "1")
    server_kwargs = {"registry": root, "workers": 1, "metrics": False, "wait_until_serving": False}
    with start_server(**server_kwargs) as server:
        deadline = time.monotonic() + 30
        while not server.events("models_load_failed"):
            assert time.monotonic() < deadline, server.stderr_text()[-3000:]
            time.sleep(0.2)
        assert not server.events("worker_serving")


def test_a_configured_reference_that_names_no_model_is_still_a_start_failure(tmp_path):
    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    models = ["cl100k_base", "no_such_model"]
    with start_server(registry=root, workers=1, metrics=False, wait_until_serving=False, models=models) as server:
        assert server.process.wait(timeout=30) != 0
        errors = server.events("config_error")
        assert errors and "unknown model 'no_such_model'" in errors[0]["error"], server.stderr_text()[-3000:]


def test_a_malformed_configured_reference_is_refused_before_anything_loads(tmp_path):
    """The worker's own check (the supervisor checks --models before starting workers; a worker run alone, or
    restarted against a changed registry, must not serve a configuration it cannot honour): a malformed
    reference is InvalidRequest naming it, raised before any model loads. It was taken for a load failure
    of that one model, unlogged, and the worker served the others."""
    loads = []

    class Observer:
        def model_loaded(self, loaded, seconds, payload_format):
            loads.append(loaded.name)

        def model_load_failed(self, name, version):
            loads.append(f"{name} failed")

    root = build_registry(tmp_path / "registry", ["cl100k_base"])
    with pytest.raises(InvalidRequest, match="'cl100k_base@' has an empty selector"):
        ServedModels(Registry.open(root), observer=Observer()).load_configured(["cl100k_base", "cl100k_base@"])
    assert loads == []
