"""The token-budget RPCs against real servers: Encode's offsets option, Truncate, Chunk, ChunkStream and
DecodeStream reach the service, their errors map to statuses with details, their limits hold, and the
streams behave as streams (chunks as they are made, a cancelled stream stops the server's work, a deadline
stops a 10 MB chunking, ids fed one at a time over a multi-byte character, a bound on open streams).
tiktoken is the oracle for what comes back."""

from __future__ import annotations

import queue
import time

import grpc
import pytest
import tiktoken

import tokend
from support.server import TokendServer
from tokend_api.v1 import tokenizer_pb2 as pb

from .conftest import rpc_error
from .status_details import details_of

TEXT = "The quick brown fox jumps over the lazy dog. 🤖 Ünïcödé!\n\nA second paragraph, with two sentences. Yes."


@pytest.fixture(scope="module")
def oracle():
    return tiktoken.get_encoding("cl100k_base")


@pytest.fixture(scope="module")
def big_server():
    """One worker that takes a 10 MB document (requests up to 12 MB, answers up to 64 MB)."""
    server = TokendServer(
        "--max-request-bytes", str(12 << 20), "--max-message-bytes", str(64 << 20), workers=1, models=["cl100k_base"]
    ).start()
    yield server
    server.stop()


def _metric(server: TokendServer, name: str, **labels: str) -> float:
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in server.scrape_metrics().splitlines():
        if line.startswith(name + "{") and all(label in line for label in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


# -- Encode with offsets -------------------------------------------------------------------------------------


def test_encode_without_the_option_is_todays_answer(stub):
    request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=TEXT)])
    response = stub.Encode(request, timeout=10)
    assert [field.name for field, _ in response.ListFields()] == ["model", "results", "total_tokens"]
    with_offsets = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=TEXT)], offsets=True), timeout=10)
    assert list(with_offsets.results) == list(response.results) and with_offsets.total_tokens == response.total_tokens


def test_encode_offsets_and_token_bytes_are_tiktokens(stub, oracle):
    texts = [TEXT, "", "日本語 👩‍👩‍👧 e\u0301"]
    request = pb.EncodeRequest(
        model="cl100k_base", inputs=[pb.Input(text=text) for text in texts], offsets=True, token_bytes=True
    )
    response = stub.Encode(request, timeout=10)
    assert len(response.offsets) == len(texts)
    for text, result, offsets in zip(texts, response.results, response.offsets):
        ids = oracle.encode(text)
        assert list(result.ids) == ids
        assert list(offsets.starts) == oracle.decode_with_offsets(ids)[1]
        assert list(offsets.token_bytes) == oracle.decode_tokens_bytes(ids)
        for start, end, byte_start, byte_end in zip(offsets.starts, offsets.ends, offsets.byte_starts, offsets.byte_ends):
            assert text.encode()[byte_start:byte_end] in text[start:end].encode()
    only_bytes = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="hi")], token_bytes=True), timeout=10)
    assert list(only_bytes.offsets[0].token_bytes) == [b"hi"] and not only_bytes.offsets[0].starts


def test_offsets_of_raw_bytes_are_refused_naming_the_item(stub):
    error = rpc_error(
        stub.Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="ok"), pb.Input(data=b"\xff")], offsets=True),
        timeout=10,
    )  # fmt: skip
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "inputs[1]" in details_of(error).violations


def test_offsets_multiply_the_answer_and_its_size_is_checked(stub):
    text = "\x01" * 190_000  # a token per byte: ids fit the shared server's 1 MiB answers, offsets do not
    request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
    assert len(stub.Encode(request, timeout=30).results[0].ids) == 190_000
    request.offsets = True
    error = rpc_error(stub.Encode, request, timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_message_bytes"


# -- Truncate and Chunk --------------------------------------------------------------------------------------


def test_truncate_keeps_the_longest_fitting_part_in_tiktokens_ids(stub, oracle):
    local = tokend.get_encoding("cl100k_base")
    texts = [TEXT, "short", ""]
    for side, wire in (("right", pb.TruncateRequest.SIDE_UNSPECIFIED), ("left", pb.TruncateRequest.SIDE_LEFT)):
        request = pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text=t) for t in texts], max_tokens=9, side=wire)
        response = stub.Truncate(request, timeout=10)
        assert response.model.name == "cl100k_base"
        for text, kept in zip(texts, response.results):
            part = text[kept.start : kept.end]
            assert text.encode()[kept.byte_start : kept.byte_end] == part.encode()
            assert list(kept.ids) == oracle.encode(part) and len(kept.ids) <= 9
            assert kept.total_tokens == len(oracle.encode(text))
            assert (kept.start == 0) if side == "right" else (kept.end == len(text))
            expected = local.truncate(text, 9, side)  # the engine's semantics, proved against tiktoken there
            assert (kept.start, kept.end, list(kept.ids)) == (expected.start, expected.end, expected.ids)


def test_chunk_and_chunk_stream_give_the_same_chunks(stub, oracle):
    request = pb.ChunkRequest(
        model="cl100k_base", inputs=[pb.Input(text=TEXT)], max_tokens=8, overlap=2,
        prefer=pb.ChunkRequest.PREFER_SENTENCE,
    )  # fmt: skip
    chunks = list(stub.Chunk(request, timeout=10).results[0].chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT)
    for chunk in chunks:
        assert list(chunk.ids) == oracle.encode(TEXT[chunk.start : chunk.end]) and len(chunk.ids) <= 8
    messages = list(stub.ChunkStream(request, timeout=10))
    assert messages[0].model.name == "cl100k_base" and all(not m.HasField("model") for m in messages[1:])
    assert [chunk for message in messages for chunk in message.chunks] == chunks
    empty = list(stub.ChunkStream(pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="")], max_tokens=8), timeout=10))
    assert len(empty) == 1 and empty[0].model.name == "cl100k_base" and not empty[0].chunks


@pytest.mark.parametrize(
    "method, request_, code, field",
    [
        ("Truncate", pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text="x")]), "INVALID_ARGUMENT", "max_tokens"),
        ("Truncate", pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text="x")], max_tokens=1, side=7), "INVALID_ARGUMENT", "side"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="x")], max_tokens=0), "INVALID_ARGUMENT", "max_tokens"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="x")], max_tokens=2, overlap=2), "INVALID_ARGUMENT", "overlap"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="x")], max_tokens=2, prefer=9), "INVALID_ARGUMENT", "prefer"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="ok"), pb.Input(text="🤖")], max_tokens=2), "INVALID_ARGUMENT", "inputs[1]"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="a b c")], max_tokens=1, max_chunks=2), "INVALID_ARGUMENT", "inputs[0]"),
        ("Chunk", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(data=b"x")], max_tokens=1), "INVALID_ARGUMENT", "inputs[0]"),
        ("Chunk", pb.ChunkRequest(model="nope", inputs=[pb.Input(text="x")], max_tokens=1), "NOT_FOUND", "model"),
        ("Truncate", pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text="a<|endoftext|>")], max_tokens=1), "INVALID_ARGUMENT", "inputs[0]"),
        ("ChunkStream", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="a"), pb.Input(text="b")], max_tokens=1), "INVALID_ARGUMENT", "inputs"),
        ("ChunkStream", pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="🤖")], max_tokens=2), "INVALID_ARGUMENT", "inputs[0]"),
    ],
)
def test_errors_map_to_statuses_naming_the_field(stub, method, request_, code, field):
    call = getattr(stub, method)
    error = rpc_error(lambda: list(call(request_, timeout=10)) if method == "ChunkStream" else call(request_, timeout=10))
    assert error.code() == grpc.StatusCode[code], error.details()
    assert field in details_of(error).violations, details_of(error)


def test_an_unmeetable_budget_carries_the_argument_and_the_item(stub):
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="ok"), pb.Input(text="🤖")], max_tokens=2)
    error = rpc_error(stub.Chunk, request, timeout=10)
    assert details_of(error).error_info["INVALID_BUDGET_ERROR"] == {"argument": "max_tokens", "item": "1"}
    assert "use max_tokens >= 3" in error.details()


def test_max_chunks_bounds_a_request(big_server):
    stub = big_server.stub()
    words = " a" * 100_001  # 100,001 tokens: more than 100,000 chunks of one token
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=words)], max_tokens=1)
    for call in (stub.Chunk, lambda r, timeout: list(stub.ChunkStream(r, timeout=timeout))):
        error = rpc_error(call, request, timeout=30)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_chunks"


# -- streams -------------------------------------------------------------------------------------------------


def _document(megabytes: float) -> str:
    paragraph = "The quick brown fox jumps over the lazy dog, again and again. Ünïcödé text, too.\n\n"
    return paragraph * int(megabytes * 1_000_000 / len(paragraph.encode()))


def test_a_client_that_cancels_a_chunk_stream_stops_the_servers_work(big_server):
    stub = big_server.stub()
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=_document(4))], max_tokens=16)
    responses = stub.ChunkStream(request, timeout=120)
    first = next(responses)
    assert first.model.name == "cl100k_base" and first.chunks[0].start == 0
    responses.cancel()
    assert _until(lambda: _metric(big_server, "grpc_server_handled_total", grpc_method="ChunkStream", grpc_code="CANCELLED") == 1)
    assert _until(lambda: _metric(big_server, "tokend_rpc_in_flight", grpc_method="ChunkStream") == 0)
    # The worker answers at once again (it is not still chunking the document).
    assert big_server.stub().CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]), timeout=10).total == 1


def _stopped_at_its_deadline(server: TokendServer, method: str, started_before: float, before: float) -> None:
    """The call a client just saw end at its deadline was counted DEADLINE_EXCEEDED by the server (its work saw the
    deadline and stopped: a server that went on would count OK once done, and a client that merely gave up is not
    counted as this) — or never reached a handler: under load the 10 MB request can still be arriving when its
    0.3 s pass, and gRPC ends such a call before any work (nothing started, nothing to stop)."""

    def counts() -> dict[str, float]:
        return {code: _metric(server, "grpc_server_handled_total", grpc_method=method, grpc_code=code)
                for code in ("OK", "CANCELLED", "DEADLINE_EXCEEDED", "UNKNOWN")}  # fmt: skip

    def ended() -> bool:
        if _metric(server, "tokend_rpc_in_flight", grpc_method=method) != 0:
            return False
        started = _metric(server, "grpc_server_started_total", grpc_method=method) > started_before
        return not started or counts()["DEADLINE_EXCEEDED"] == before + 1

    assert _until(ended), (counts(), _metric(server, "grpc_server_started_total", grpc_method=method), started_before)


def test_the_calls_deadline_stops_a_10_mb_chunking(big_server):
    stub = big_server.stub()
    document = _document(10)
    assert len(document.encode()) >= 9_990_000
    for method in ("ChunkStream", "Chunk"):
        before = _metric(big_server, "grpc_server_handled_total", grpc_method=method, grpc_code="DEADLINE_EXCEEDED")
        started_before = _metric(big_server, "grpc_server_started_total", grpc_method=method)
        # 0.3 s: the unary Chunk reaches its 100,000-chunk limit after ~1.1 s of this work here (and did within a
        # 1 s deadline once the engine got faster), the handlers start within ~0.1 s.
        request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=32)
        if method == "ChunkStream":
            with pytest.raises(grpc.RpcError) as caught:
                for _ in stub.ChunkStream(request, timeout=0.3):
                    pass
            error = caught.value
        else:
            error = rpc_error(stub.Chunk, request, timeout=0.3)
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        _stopped_at_its_deadline(big_server, method, started_before, before)


def test_decode_stream_fed_one_id_at_a_time_over_a_multibyte_character(stub, oracle):
    ids = oracle.encode("a 🤖 é")
    emoji = oracle.encode(" 🤖")
    assert len(emoji) == 3  # " \xf0\x9f", "\xa4", "\x96": the robot is split over three tokens
    requests = [pb.DecodeStreamRequest(model="cl100k_base", ids=ids[:1])] + [pb.DecodeStreamRequest(ids=[t]) for t in ids[1:]]
    responses = list(stub.DecodeStream(iter(requests), timeout=10))
    assert responses[0].model.name == "cl100k_base" and responses[0].model.version == 1
    assert all(not response.HasField("model") for response in responses[1:])
    assert [response.text for response in responses] == ["a", " ", "", "🤖", " é"]
    assert [response.pending for response in responses] == [b"", b"\xf0\x9f", b"\xf0\x9f\xa4", b"", b""]


def test_decode_stream_flushes_when_asked_and_at_the_end(stub, oracle):
    partial = oracle.encode("🤖")[:1]
    requests = [
        pb.DecodeStreamRequest(model="cl100k_base", ids=partial, flush=True),  # ends a sequence: U+FFFD
        pb.DecodeStreamRequest(ids=oracle.encode("ok")),
        pb.DecodeStreamRequest(ids=partial),
    ]
    responses = list(stub.DecodeStream(iter(requests), timeout=10))
    assert [response.text for response in responses] == ["\ufffd", "ok", "", "\ufffd"]  # + the flush at the end


@pytest.mark.parametrize(
    "requests, field, reason",
    [
        ([pb.DecodeStreamRequest(model="cl100k_base", ids=[15339]), pb.DecodeStreamRequest(ids=[100261])], "messages[1]", "UNKNOWN_TOKEN_ID_ERROR"),
        ([pb.DecodeStreamRequest(model="cl100k_base", errors=pb.DecodeRequest.ERRORS_STRICT, ids=[9468, 97])], "messages[1]", "UNICODE_DECODE_ERROR"),
        ([pb.DecodeStreamRequest(model="cl100k_base", ids=[1]), pb.DecodeStreamRequest(model="o200k_base", ids=[1])], "messages[1].model", "INVALID_REQUEST"),
        ([pb.DecodeStreamRequest(model="cl100k_base", errors=9)], "errors", "INVALID_REQUEST"),
    ],
)
def test_decode_stream_errors_end_the_stream_as_decode_errors(stub, requests, field, reason):
    error = rpc_error(lambda: list(stub.DecodeStream(iter(requests), timeout=10)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = details_of(error)
    assert field in details.violations and reason in details.error_info, details


def test_decode_stream_of_an_unknown_model_is_not_found(stub):
    error = rpc_error(lambda: list(stub.DecodeStream(iter([pb.DecodeStreamRequest(model="nope", ids=[1])]), timeout=10)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


class _OpenStream:
    """A DecodeStream kept open by its client (a generation in progress)."""

    def __init__(self, stub) -> None:
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._requests.put(pb.DecodeStreamRequest(model="cl100k_base", ids=[15339]))
        self.responses = stub.DecodeStream(iter(self._requests.get, None), timeout=60)

    def first(self):
        return next(self.responses)

    def close(self) -> None:
        self._requests.put(None)
        list(self.responses)


def test_open_streams_are_bounded_per_worker_and_unary_calls_still_pass(big_server):
    stub = big_server.stub()
    streams = [_OpenStream(stub) for _ in range(4)]  # STREAM_SLOTS: 4 of the worker's threads
    try:
        assert [stream.first().text for stream in streams] == ["hello"] * 4
        extra = _OpenStream(stub)
        error = rpc_error(extra.first)
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "already runs 4 streams" in error.details()
        count = stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]), timeout=10)
        assert count.total == 1
    finally:
        for stream in streams:
            stream.close()
    again = _OpenStream(stub)
    assert again.first().text == "hello"
    again.close()


def test_stream_usage_is_measured(big_server):
    stub = big_server.stub()
    before = _metric(big_server, "tokend_tokens_total", operation="chunk")
    chunks = list(stub.ChunkStream(pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=TEXT)], max_tokens=8), timeout=10))
    tokens = sum(len(chunk.ids) for message in chunks for chunk in message.chunks)
    assert _until(lambda: _metric(big_server, "tokend_tokens_total", operation="chunk") == before + tokens)
    assert _metric(big_server, "grpc_server_started_total", grpc_method="ChunkStream", grpc_type="server_stream") >= 1
