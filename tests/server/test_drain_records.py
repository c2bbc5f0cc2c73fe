"""Every call a draining worker started ends with exactly one ``grpc_server_handled_total`` count and one request
log line, with the status its client saw, even when the grace period ends while its handler still runs (the
worker then ends its process: worker.py, ``_end_process``). Against a real worker; its records read from the
server's /metrics and its log."""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
from tokend_api.v1 import tokenizer_pb2 as pb

from support.server import start_server

from .test_hostile_requests import _samples

GRACE_PERIOD = 1.0  # seconds: the calls below outlast it


def _calls(scraped: str) -> tuple[dict[str, float], dict[str, float]]:
    """(calls started, handlers running) of CountTokens and ChunkStream: ``grpc_server_started_total`` and
    ``tokend_rpc_in_flight``, counted together as a handler starts. A call's answer headers are no sign of its
    handler's end: the worker sends them first."""
    methods = ("CountTokens", "ChunkStream")
    started = {labels["grpc_method"]: value for labels, value in _samples(scraped, "grpc_server_started_total")
               if labels["grpc_method"] in methods}  # fmt: skip
    running = {labels["grpc_method"]: value for labels, value in _samples(scraped, "tokend_rpc_in_flight")
               if value and labels["grpc_method"] in methods}  # fmt: skip
    return started, running


def _wait_for(condition, seconds: float = 60.0) -> None:
    """Until ``condition()`` holds: a condition, not a fixed time (what a loaded machine does in a second varies)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def test_calls_cut_at_the_grace_periods_end_are_counted_and_logged_with_the_status_their_clients_saw(registry_dir):
    """A call whose handler still ran when the grace period ended was counted started and never handled (the dead
    worker's counters stay in the supervisor's sums, so started - handled stayed off for good) and had no log line:
    the process ended under its handler. Here a large CountTokens waits for room in the work budget (an unread
    one holds it) and a ChunkStream waits in gRPC's send (its client reads nothing); both are cut. Their clients
    see UNAVAILABLE (the connection closes with the process), and so do their records now."""
    from support.raw_grpc import UnreadCalls

    large = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello " * 350_000)])  # 42 MB reserved
    # Reserves nothing (under 4 MiB estimated: 64 bytes a byte), so the call waiting for room does not end it
    # (a stream holding room would be: idle_streams.py); its answer (~120 KB) outgrows the windows all the same.
    document = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="Some words here. " * 3_500)], max_tokens=4)
    with start_server("--max-work-bytes", str(64 << 20), "--answer-send-seconds", "60", registry=registry_dir,
                      models=["cl100k_base"], metrics=True, log_level="info", grace_period=GRACE_PERIOD,
                      drain_flush=0.1) as server:  # fmt: skip
        (worker,) = server.worker_pids()
        host, port = server.target.rsplit(":", 1)
        unread = UnreadCalls(host, int(port))
        unread.send("/tokend.v1.Tokenizer/CountTokens", large.SerializeToString())  # holds 42 MB, answer unread
        _wait_for(lambda: _calls(server.scrape_metrics()) == ({"CountTokens": 1}, {}))  # its handler returned
        unread.send("/tokend.v1.Tokenizer/ChunkStream", document.SerializeToString())  # its first message unread
        seen: list[grpc.StatusCode] = []

        def waiting_call() -> None:  # waits for the room the unread call holds, past the grace period
            try:
                server.stub().CountTokens(large, timeout=60)
                seen.append(grpc.StatusCode.OK)
            except grpc.RpcError as error:
                seen.append(error.code())

        caller = threading.Thread(target=waiting_call, daemon=True)
        caller.start()
        # both running: the stream, and the second CountTokens (the first one's handler has returned)
        _wait_for(lambda: _calls(server.scrape_metrics()) == ({"CountTokens": 2, "ChunkStream": 1},
                                                               {"CountTokens": 1, "ChunkStream": 1}))  # fmt: skip
        os.kill(worker, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while worker in server.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.1)
        caller.join(30)
        unread.close()
        assert worker not in server.worker_pids(), "the worker did not end"
        scraped = server.scrape_metrics()
        logs = server.logs()
    assert seen == [grpc.StatusCode.UNAVAILABLE], seen
    (stopped,) = [entry for entry in logs if entry.get("event") == "worker_stopped"]
    assert stopped["calls_cut"] == 2 and stopped["answers_unsent"] == 1, stopped  # the waiting call, the stream
    started = {labels["grpc_method"]: value for labels, value in _samples(scraped, "grpc_server_started_total")}
    handled: dict[str, dict[str, float]] = {}
    for labels, value in _samples(scraped, "grpc_server_handled_total"):
        handled.setdefault(labels["grpc_method"], {})[labels["grpc_code"]] = value
    # The unread CountTokens (recorded when the worker ended, review08) and the one cut: {UNAVAILABLE: 1} before.
    assert handled.get("CountTokens") == {"UNAVAILABLE": 2}, handled
    assert handled.get("ChunkStream") == {"UNAVAILABLE": 1}, handled  # None before: started 1, handled never
    for method in ("CountTokens", "ChunkStream"):
        assert started[method] == sum(handled[method].values()), (method, started, handled)
    lines = sorted((entry["method"].rsplit("/", 1)[1], entry["code"]) for entry in logs
                   if entry.get("event") in ("rpc", "rpc_error") and "Tokenizer" in entry.get("method", ""))  # fmt: skip
    # one line, the unread CountTokens', before
    assert lines == [("ChunkStream", "UNAVAILABLE"), *[("CountTokens", "UNAVAILABLE")] * 2], lines
