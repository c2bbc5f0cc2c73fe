"""Structured logs: every stderr line is a JSON object; start-up logs the settings; errors name
method, model, version and code; the text and ids of requests never appear."""

from __future__ import annotations

import io
import json
import logging

import grpc
import pytest

from tokend_api.v1 import tokenizer_pb2 as pb
from tokend.logs import JsonFormatter, log_event

SECRET = "Sphinx of black quartz, judge my vow 8c1f"


def test_formatter_puts_fields_at_top_level():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tokend.test.logs")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        log_event(logger, "model_loaded", model="cl100k_base", version=1, seconds=0.25)
        logger.warning("plain %s message", "printf-style")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "model_loaded" and first["model"] == "cl100k_base" and first["version"] == 1
    assert first["level"] == "info" and first["logger"] == "tokend.test.logs" and first["ts"].endswith("Z")
    assert second["event"] == "log" and second["message"] == "plain printf-style message" and second["level"] == "warning"


def test_server_logs_are_json_with_settings_and_error_fields(stub, shared_server):
    stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=SECRET)]), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=SECRET + "<|endoftext|>")]), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.Decode(pb.DecodeRequest(model="o200k_base@1", inputs=[pb.TokenIds(ids=[987654321])]), timeout=10)
    text = shared_server.stderr_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    (starting,) = shared_server.events("starting")
    assert starting["settings"]["max_batch_items"] == 64 and starting["settings"]["workers"] == 1
    errors = shared_server.events("rpc_error")
    special = [e for e in errors if e["method"] == "/tokend.v1.Tokenizer/Encode" and e["code"] == "INVALID_ARGUMENT"]
    assert special and special[-1]["model"] == "cl100k_base" and special[-1]["version"] == 1
    unknown = [e for e in errors if e["method"] == "/tokend.v1.Tokenizer/Decode" and e["code"] == "INVALID_ARGUMENT"]
    assert unknown and unknown[-1]["model"] == "o200k_base" and unknown[-1]["version"] == 1
    assert any(e["event"] == "model_loaded" and e["model"] == "o200k_base" for e in shared_server.logs())
    assert SECRET not in text and "987654321" not in text
