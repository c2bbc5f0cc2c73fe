"""gRPC framing errors (issue 13, item 13): a request whose message framing is broken never reaches tokend's
Python code — grpcio's C core answers it before any interceptor runs, so it cannot be mapped to
INVALID_ARGUMENT there. These are the answers docs/api.md documents (hostile input table); the test pins
them, so a grpcio upgrade that changes them shows up, and checks the worker keeps serving. Its own server:
the C core also writes a plain-text line to stderr for some of them, which the shared server's JSON log
test must not see."""

from __future__ import annotations

import gzip

import pytest
from tokend_api.v1 import tokenizer_pb2 as pb

from support.raw_grpc import raw_call
from support.server import TokendServer

METHOD = "/tokend.v1.Tokenizer/CountTokens"
REQUEST = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello")]).SerializeToString()


@pytest.fixture(scope="module")
def framing_server(registry_dir):
    server = TokendServer(registry=registry_dir, models=["cl100k_base"], metrics=False).start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "flag,encoding,message,status,says",
    [
        (True, None, REQUEST, "13", "Compression bit set but no encoding configured"),
        (True, "identity", REQUEST, "13", "Compression bit set but no encoding configured"),
        (True, "gzip", b"\x1f\x8b\x08 not gzip", "13", "Decompression failed due to zlib error"),
        (True, "br", REQUEST, "13", "Error parsing 'grpc-encoding' metadata"),
        (True, "gzip", gzip.compress(b"\x00" * (64 << 20)), "8", "Decompressed message larger than max"),
        (True, "gzip", gzip.compress(REQUEST), "0", ""),
    ],
    ids=["flag-without-encoding", "flag-with-identity", "corrupt-gzip", "unknown-encoding", "gzip-bomb", "valid-gzip"],
)
def test_framing_errors_get_the_documented_status(framing_server, flag, encoding, message, status, says):
    port = framing_server.port
    code, details, reset = raw_call("127.0.0.1", port, METHOD, message, compressed_flag=flag, encoding=encoding)
    assert (code, details, reset) == (status, says, None)
    code, _, _ = raw_call("127.0.0.1", port, METHOD, REQUEST, compressed_flag=False, encoding=None)
    assert code == "0"  # the worker still answers
