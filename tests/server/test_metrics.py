"""/metrics of a two-worker server: scraped over HTTP, summed across workers, moving by exact amounts,
named as DEVELOPERS.md says, and clean under `promtool check metrics`."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import urllib.request

import grpc
import pytest
import tiktoken
from prometheus_client.parser import text_string_to_metric_families

from support.server import TokendServer
from tokend_api.v1 import tokenizer_pb2 as pb

TEXTS = ["hello world", "Héllo wörld, 日本語", "def f(x):\n    return x\n"]


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return values


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def server(registry_dir):
    server = TokendServer(registry=registry_dir, workers=2).start()
    yield server
    server.stop()


def _call_on_fresh_channel(server, method: str, request):
    channel = grpc.insecure_channel(server.target)
    try:
        response, call = getattr(server.stub(channel), method).with_call(request, timeout=10, wait_for_ready=True)
        return response, dict(call.initial_metadata())["tokend-worker"]
    finally:
        channel.close()


def test_counters_move_by_the_right_amounts_across_workers(server):
    oracle = tiktoken.get_encoding("cl100k_base")
    before = _samples(server.scrape_metrics())
    encode_request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=t) for t in TEXTS])
    # New connections until both workers have answered: the totals must then include both.
    workers, encodes = set(), 0
    while len(workers) < 2 and encodes < 60:
        _, worker = _call_on_fresh_channel(server, "Encode", encode_request)
        workers.add(worker)
        encodes += 1
    assert len(workers) == 2, "the kernel never sent a connection to the second worker"
    count_request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=t) for t in TEXTS[:2]])
    _call_on_fresh_channel(server, "CountTokens", count_request)
    decode_request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[15339, 1917]), pb.TokenIds(ids=[64])])
    _call_on_fresh_channel(server, "Decode", decode_request)
    with pytest.raises(grpc.RpcError):
        _call_on_fresh_channel(server, "Encode", pb.EncodeRequest(model="nope", inputs=[pb.Input(text="x")]))
    after = _samples(server.scrape_metrics())

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    rpc = {"grpc_type": "unary", "grpc_service": "tokend.v1.Tokenizer"}
    assert delta("grpc_server_started_total", grpc_method="Encode", **rpc) == encodes + 1
    assert delta("grpc_server_handled_total", grpc_method="Encode", grpc_code="OK", **rpc) == encodes
    assert delta("grpc_server_handled_total", grpc_method="Encode", grpc_code="NOT_FOUND", **rpc) == 1
    assert delta("grpc_server_handled_total", grpc_method="CountTokens", grpc_code="OK", **rpc) == 1
    assert delta("grpc_server_handled_total", grpc_method="Decode", grpc_code="OK", **rpc) == 1
    assert delta("grpc_server_handling_seconds_count", grpc_method="Encode", **rpc) == encodes + 1

    usage = {"model": "cl100k_base", "version": "1"}
    encode_tokens = sum(len(oracle.encode(t)) for t in TEXTS)
    assert delta("tokend_tokens_total", operation="encode", **usage) == encodes * encode_tokens
    assert delta("tokend_input_bytes_total", operation="encode", **usage) == encodes * sum(len(t.encode()) for t in TEXTS)
    assert delta("tokend_tokens_total", operation="count", **usage) == sum(len(oracle.encode(t)) for t in TEXTS[:2])
    assert delta("tokend_input_bytes_total", operation="count", **usage) == sum(len(t.encode()) for t in TEXTS[:2])
    assert delta("tokend_tokens_total", operation="decode", **usage) == 3
    assert delta("tokend_batch_items_count", grpc_method="Encode") == encodes
    assert delta("tokend_batch_items_sum", grpc_method="Encode") == encodes * len(TEXTS)
    assert delta("tokend_batch_items_bucket", grpc_method="Encode", le="2.0") == 0
    assert delta("tokend_batch_items_bucket", grpc_method="Encode", le="4.0") == encodes
    # Every piece of every encoded/counted text was looked up in the cache: hit or miss.
    lookups = delta("tokend_piece_cache_hits_total", **usage) + delta("tokend_piece_cache_misses_total", **usage)
    assert lookups > 0
    assert _value(after, "tokend_rpc_in_flight", grpc_method="Encode") == 0


def test_gauges_and_model_info(server, registry_dir):
    samples = _samples(server.scrape_metrics())
    assert _value(samples, "tokend_workers") == 2
    assert _value(samples, "tokend_ready") == 1
    assert _value(samples, "tokend_worker_restarts_total") == 0
    for name in ("cl100k_base", "o200k_base"):
        sha256 = hashlib.sha256((registry_dir / name / "1" / "manifest.json").read_bytes()).hexdigest()
        labels = {"model": name, "version": "1", "payload_format": "tiktoken", "sha256": sha256}
        assert _value(samples, "tokend_model_info", **labels) == 1
        # Loaded once in each of the two workers.
        assert _value(samples, "tokend_model_load_seconds_count", model=name, version="1") == 2
        assert _value(samples, "tokend_model_load_failures_total", model=name, version="1") == 0


def test_metric_names_are_the_documented_contract(server):
    # A labelled family appears with its first sample: one call of its own, so the names do not depend on
    # which tests ran before on this server.
    texts = [*TEXTS, "qzxvbnmplkjh wrtypsdfghjk"]  # + pieces of 6+ bytes that are no tokens: the piece cache
    _call_on_fresh_channel(server, "Encode", pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=t) for t in texts]))
    names = {family.name for family in text_string_to_metric_families(server.scrape_metrics())}
    # prometheus_client reports counters without the _total suffix in family names.
    expected = {
        "grpc_server_started", "grpc_server_handled", "grpc_server_handling_seconds", "tokend_rpc_in_flight",
        "tokend_tokens", "tokend_input_bytes", "tokend_batch_items", "tokend_model_load_seconds",
        "tokend_model_info", "tokend_piece_cache_hits", "tokend_piece_cache_misses", "tokend_workers",
        "tokend_worker_restarts", "tokend_ready", "tokend_answers_cancelled",
    }  # fmt: skip
    assert expected <= names


def test_promtool_check_metrics_is_clean(server):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus; `make test` installs it)"
    result = subprocess.run([promtool, "check", "metrics"], input=server.scrape_metrics(), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_a_burst_of_scrapes_and_vanishing_scrapers(server):
    """50 simultaneous scrapes are all answered (the endpoint listens with a real backlog), and scrapers that
    reset their connection leave no traceback in the log (issue 13 item 8)."""
    import socket
    import struct
    from concurrent.futures import ThreadPoolExecutor

    def scrape(_: int) -> int:
        with urllib.request.urlopen(server.metrics_url, timeout=30) as response:
            response.read()
            return response.status

    with ThreadPoolExecutor(50) as pool:
        assert list(pool.map(scrape, range(50))) == [200] * 50
    for number in range(20):
        sock = socket.create_connection(("127.0.0.1", server.metrics_port), timeout=10)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + (b"\r\n" if number % 2 else b""))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.5)
    assert scrape(0) == 200
    assert "Traceback" not in server.stderr_text(), server.stderr_text()[-3000:]
