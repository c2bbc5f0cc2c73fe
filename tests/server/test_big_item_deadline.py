"""A big item's byte-level encode stops at the call's deadline and frees its worker (issue 13): 8 MB of random
300-letter words (pieces of 301 bytes, the byte-level merge's slowest shape: ~0.1 s a MB on cl100k_base) in one
CountTokens / Encode whose deadline is a quarter of the whole count's time on this server. Before, the one item
ran to its end (there is no batch boundary to check at): the handler took as long as counting the whole text. Now
the core looks at the call's stop every 64 KiB of pieces. Judged by the server's own log of each call (its
handler's milliseconds), against the whole count of the same text on the same server a moment before: ratios, not
times, so a slower or faster machine (or merge) moves both. Real `tokend serve`, one worker."""

from __future__ import annotations

import random
import string
import time

import grpc
import pytest
import tiktoken

from support.server import TokendServer
from tokend_api.v1 import tokenizer_pb2 as pb


@pytest.fixture(scope="module")
def server():
    server = TokendServer(workers=1, models=["cl100k_base"], log_level="debug").start()  # debug: OK calls logged too
    yield server
    server.stop()


def _words(total: int) -> str:
    rng = random.Random(7)
    return " ".join("".join(rng.choices(string.ascii_lowercase, k=300)) for _ in range(total // 301))



def _handler_ms(server: TokendServer, method: str, event: str) -> list[float]:
    return [entry["ms"] for entry in server.events(event) if entry["method"].endswith("/" + method)]


def _until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope="module")
def whole_ms(server):
    """The server's milliseconds for counting the whole text (median of 3)."""
    stub = server.stub()
    for _ in range(3):
        assert stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=TEXT)]), timeout=120).total
    assert _until(lambda: len(_handler_ms(server, "CountTokens", "rpc")) >= 3)
    return sorted(_handler_ms(server, "CountTokens", "rpc")[-3:])[1]


TEXT = _words(8_000_000)


@pytest.mark.parametrize("method", ["CountTokens", "Encode"])
def test_a_big_items_deadline_stops_its_merge_midway(server, whole_ms, method):
    stub = server.stub()
    request = (pb.CountTokensRequest if method == "CountTokens" else pb.EncodeRequest)(
        model="cl100k_base", inputs=[pb.Input(text=TEXT)])
    before = len(_handler_ms(server, method, "rpc_error"))
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, method)(request, timeout=max(0.05, whole_ms / 4 / 1000))
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert _until(lambda: len(_handler_ms(server, method, "rpc_error")) == before + 1)
    stopped_ms = _handler_ms(server, method, "rpc_error")[-1]
    assert stopped_ms < whole_ms * 3 / 4, (stopped_ms, whole_ms)  # before: about the whole count's time, or more
    # The worker answers again, and a part of the text with time to spare is counted whole.
    small = stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]), timeout=10)
    assert small.total == 1
    part = TEXT[:200_000]
    whole = stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=part)]), timeout=60)
    assert whole.total == len(tiktoken.get_encoding("cl100k_base").encode_ordinary(part))
