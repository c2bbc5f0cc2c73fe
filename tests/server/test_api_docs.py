"""docs/api.md is true: every grpcurl request on the page is sent to a real server on the embedded default
registry (what `make serve` runs, as the page says) and must give the documented status code; for Encode,
CountTokens, Decode, the token-budget RPCs and the chat RPCs the documented JSON response must be exactly
what the server returns (for streams: every message, in order; a streaming request is several JSON objects
in one `-d`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.server import TokendServer
from tokend_api.v1 import tokenizer_pb2 as pb

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.S)
_COMMAND = re.compile(r"grpcurl -plaintext (?:-d '(?P<body>[^']*)' )?localhost:50051 (?P<method>[\w.]+/\w+)$")
_REQUESTS = {
    "tokend.v1.Tokenizer/Encode": pb.EncodeRequest,
    "tokend.v1.Tokenizer/CountTokens": pb.CountTokensRequest,
    "tokend.v1.Tokenizer/Decode": pb.DecodeRequest,
    "tokend.v1.Tokenizer/ListModels": pb.ListModelsRequest,
    "tokend.v1.Tokenizer/GetModel": pb.GetModelRequest,
    "tokend.v1.Tokenizer/Truncate": pb.TruncateRequest,
    "tokend.v1.Tokenizer/Chunk": pb.ChunkRequest,
    "tokend.v1.Tokenizer/ChunkStream": pb.ChunkRequest,
    "tokend.v1.Tokenizer/DecodeStream": pb.DecodeStreamRequest,
    "tokend.v1.Tokenizer/EncodeChat": pb.EncodeChatRequest,
    "tokend.v1.Tokenizer/CountChatTokens": pb.CountChatTokensRequest,
    "grpc.health.v1.Health/Check": health_pb2.HealthCheckRequest,
}
_COMPARED = {"Encode", "CountTokens", "Decode", "Truncate", "Chunk", "ChunkStream", "DecodeStream", "EncodeChat", "CountChatTokens"}
_RESPONSE_STREAMS = {"ChunkStream", "DecodeStream"}
_REQUEST_STREAMS = {"DecodeStream"}


def _json_objects(text: str) -> list:
    """Consecutive JSON objects (grpcurl's streaming input and output)."""
    decoder, objects, position = json.JSONDecoder(), [], 0
    text = text.strip()
    while position < len(text):
        value, position = decoder.raw_decode(text, position)
        objects.append(value)
        while position < len(text) and text[position].isspace():
            position += 1
    return objects


def _examples():
    blocks = _BLOCK.findall(API_DOC.read_text())
    examples = []
    for position, (language, body) in enumerate(blocks):
        match = _COMMAND.match(body.strip()) if language == "sh" else None
        if match is None:
            continue
        output_language, output = blocks[position + 1] if position + 1 < len(blocks) else ("", "")
        examples.append(pytest.param(match["method"], match["body"] or "{}", output_language, output, id=f"{position}-{match['method']}"))
    return examples


EXAMPLES = _examples()


def test_the_page_has_an_example_for_every_rpc():
    methods = {example.values[0] for example in EXAMPLES}
    assert set(_REQUESTS) <= methods


def _camel_to_code(name: str) -> grpc.StatusCode:
    return grpc.StatusCode[re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()]


@pytest.fixture(scope="module")
def make_serve_server():
    """`tokend serve` on the embedded default registry, as `make serve` starts it (one worker)."""
    server = TokendServer("--reflection", workers=1, metrics=False).start()
    yield server
    server.stop()


@pytest.mark.parametrize("method,body,output_language,output", EXAMPLES)
def test_documented_example(make_serve_server, method, body, output_language, output):
    shared_server = make_serve_server
    service, name = method.split("/")
    if name in _REQUEST_STREAMS:
        request = iter([json_format.ParseDict(value, _REQUESTS[method]()) for value in _json_objects(body)])
    else:
        request = json_format.Parse(body, _REQUESTS[method]())
    channel = shared_server.channel()
    if service == "grpc.health.v1.Health":
        call = health_pb2_grpc.HealthStub(channel).Check
    else:
        call = getattr(shared_server.stub(channel), name)
    if output.startswith("ERROR:"):
        expected = _camel_to_code(re.search(r"Code: (\w+)", output)[1])
        with pytest.raises(grpc.RpcError) as info:
            list(call(request, timeout=10)) if name in _RESPONSE_STREAMS else call(request, timeout=10)
        assert info.value.code() == expected
        documented = re.search(r"Message: (.*)", output)[1]
        if expected == grpc.StatusCode.INVALID_ARGUMENT:
            assert info.value.details() == documented
        return
    response = call(request, timeout=10)
    assert output_language == "json"
    if name in _RESPONSE_STREAMS:
        assert [json_format.MessageToDict(message) for message in response] == _json_objects(output)
    elif name in _COMPARED or service == "grpc.health.v1.Health":
        assert json_format.MessageToDict(response) == json.loads(output)
