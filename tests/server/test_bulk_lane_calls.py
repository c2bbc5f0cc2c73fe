"""Large items are encoded on the worker's bulk lane (tokend.service.bulk_lane): a real worker, its threads
read from /proc. The work of a large Encode (the merge, the answer's bytes) is done by threads at niceness
19 (their CPU time grows by it), a small call's is not; answers and errors through the lane are tiktoken's
and the service's own. How much this helps small calls' latency is a benchmark (docs/bench-service.md,
"Hostile load"), not a test.
"""

from __future__ import annotations

import os
import random

import grpc
import pytest
import tiktoken
from tokend_api.v1 import tokenizer_pb2 as pb

from support.server import start_server

MiB = 1 << 20
_TICKS = os.sysconf("SC_CLK_TCK")


def _threads(pid: int) -> dict[int, tuple[int, float]]:
    """tid -> (niceness, CPU seconds) of each thread of ``pid``."""
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = open(f"/proc/{pid}/task/{tid}/stat").read()
        except FileNotFoundError:  # a thread that just ended
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 of stat(5) first
        threads[int(tid)] = (int(fields[16]), (int(fields[11]) + int(fields[12])) / _TICKS)
    return threads


def _lane_cpu(pid: int) -> float:
    return sum(cpu for nice, cpu in _threads(pid).values() if nice == 19)


def _all_cpu(pid: int) -> float:
    return sum(cpu for _, cpu in _threads(pid).values())


@pytest.fixture(scope="module")
def server():
    with start_server(workers=1, metrics=False) as server:
        yield server


def test_a_worker_has_two_bulk_threads_at_the_lowest_priority(server):
    niced = [tid for tid, (nice, _) in _threads(server.worker_pids()[0]).items() if nice == 19]
    assert len(niced) == 2


def test_the_work_of_a_large_call_is_done_by_the_bulk_threads_and_a_small_calls_is_not(server):
    pid = server.worker_pids()[0]
    rng = random.Random(13)
    # 200,000 distinct words, so most pieces miss the piece cache and the merge is ~0.3 s of lane CPU: the
    # ratio below is read in 10 ms ticks per thread, and with 1,000 words (~0.07 s of merge against 2-5 ticks
    # of gRPC's receive/send and the parse) it measured 0.54-0.78 under load, a tick or two from 0.5.
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 12))) for _ in range(200_000)]
    text = " ".join(rng.choices(words, k=700_000))[: 4 * MiB]
    stub = server.stub(server.channel(**{"grpc.max_receive_message_length": 64 * MiB}))
    small = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="a small call " * 20)])
    stub.CountTokens(small, timeout=30)

    lane, total = _lane_cpu(pid), _all_cpu(pid)
    answer = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)]), timeout=120)
    lane_work, all_work = _lane_cpu(pid) - lane, _all_cpu(pid) - total
    assert list(answer.results[0].ids) == tiktoken.get_encoding("cl100k_base").encode_ordinary(text)
    # The parse, the merge and the answer's bytes; gRPC's own threads receive and send the messages.
    assert lane_work >= 0.5 * all_work and lane_work > 0, (lane_work, all_work)

    lane = _lane_cpu(pid)
    for _ in range(300):
        stub.CountTokens(small, timeout=30)
    assert _lane_cpu(pid) == lane


def test_every_item_through_the_lane_answers_as_it_does_elsewhere():
    # A lane threshold of 1 byte: every item's engine call goes through it, the good and the bad alike.
    encoding = tiktoken.get_encoding("cl100k_base")
    with start_server("--bulk-lane-bytes", "1", workers=1, metrics=False) as server:
        stub = server.stub()
        text = "hello world <|endoftext|> 😀"
        listed = pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_LISTED, tokens=["<|endoftext|>"]))
        encoded = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text), pb.Input(data="bytes in, ids out".encode())],
                                               special_tokens=listed), timeout=30)  # fmt: skip
        assert [list(result.ids) for result in encoded.results] == [
            encoding.encode(text, allowed_special={"<|endoftext|>"}), encoding.encode_ordinary("bytes in, ids out")]
        counted = stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="a b c")]), timeout=30)
        assert counted.total == len(encoding.encode("a b c"))
        with pytest.raises(grpc.RpcError) as refused:
            stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="ok"), pb.Input(text=text)]), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "inputs[1]" in refused.value.details() and "<|endoftext|>" in refused.value.details()
        assert server.health_status() == "SERVING"
