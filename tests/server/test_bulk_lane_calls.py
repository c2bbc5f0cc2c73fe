"""Large items are encoded on the worker's bulk lane (tokend.service.bulk_lane): a real worker, its threads
read from /proc. The work of a large Encode (the merge, the answer's bytes) is done by threads at niceness
19 (their CPU time grows by it), a small call's is not; answers and errors through the lane are tiktoken's
and the service's own. So is the work of a split pattern that backtracks (the regex fallback's lane), whose
answers are Hugging Face tokenizers'. How much this helps small calls' latency is a benchmark (docs/bench-service.md,
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


def test_a_worker_has_four_threads_at_the_lowest_priority(server):
    # two of the bulk lane, two of the regex fallback's lane
    niced = [tid for tid, (nice, _) in _threads(server.worker_pids()[0]).items() if nice == 19]
    assert len(niced) == 4


def _unseen_words(seed: int) -> str:
    """4 MiB of 200,000 distinct random words, so most pieces miss the piece cache and the merge is ~0.3 s of
    lane CPU: the ratios below are read in 10 ms ticks per thread, and with 1,000 words (~0.07 s of merge against
    2-5 ticks of gRPC's receive/send and the parse) it measured 0.54-0.78 under load, a tick or two from 0.5."""
    rng = random.Random(seed)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 12))) for _ in range(200_000)]
    return " ".join(rng.choices(words, k=700_000))[: 4 * MiB]


def test_the_work_of_a_large_call_is_done_by_the_bulk_threads_and_a_small_calls_is_not(server):
    pid = server.worker_pids()[0]
    text = _unseen_words(13)
    stub = server.stub(server.channel(**{"grpc.max_receive_message_length": 64 * MiB}))
    small = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="a small call " * 20)])
    stub.CountTokens(small, timeout=30)

    lane, total = _lane_cpu(pid), _all_cpu(pid)
    answer = stub.Encode(pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)]), timeout=120)
    lane_work, all_work = _lane_cpu(pid) - lane, _all_cpu(pid) - total
    assert list(answer.results[0].ids) == tiktoken.get_encoding("cl100k_base").encode_ordinary(text)
    # The parse, the merge and the answer's bytes; gRPC's own threads receive and send the messages. Without
    # the lane its share is 0. With it: 0.80-0.92 quiet (0.12-0.17 s of 0.13-0.19 s, 2026-12-07, since short
    # unseen pieces merge in groups), 0.43 in a loaded CI run (0.20 of 0.47 s: gRPC's sending of the 12 MB
    # answer and the other threads' ticks grow under load, the merge does not), so the bound is a quarter.
    assert lane_work >= 0.25 * all_work and lane_work > 0, (lane_work, all_work)

    lane = _lane_cpu(pid)
    for _ in range(300):
        stub.CountTokens(small, timeout=30)
    assert _lane_cpu(pid) == lane


def test_the_whole_text_encode_of_a_large_truncate_is_done_by_the_bulk_threads(server):
    # Budget operations start with the whole text's encode (service/budgets.py, ``_whole_ids``) and its
    # alignment's walk (``_alignment_runner``): on the lane, as Encode's; a small answer (100 tokens kept) leaves
    # them most of the call's CPU.
    pid = server.worker_pids()[0]
    text = _unseen_words(17)
    stub = server.stub()
    lane, total = _lane_cpu(pid), _all_cpu(pid)
    answer = stub.Truncate(pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text=text)], max_tokens=100), timeout=120)
    lane_work, all_work = _lane_cpu(pid) - lane, _all_cpu(pid) - total
    kept = answer.results[0]
    reference = tiktoken.get_encoding("cl100k_base")
    assert kept.start == 0 and list(kept.ids) == reference.encode_ordinary(text[: kept.end])
    assert kept.total_tokens == len(reference.encode_ordinary(text))
    # Without the budget operations on the lane its share is 0 (nothing of a Truncate ran there).
    assert lane_work >= 0.25 * all_work and lane_work > 0, (lane_work, all_work)


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
        # the budget operations' whole-text encode too
        kept = stub.Truncate(pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text=text)], max_tokens=4,
                                                special_tokens=listed), timeout=30).results[0]  # fmt: skip
        assert list(kept.ids) == encoding.encode(text[: kept.end], allowed_special={"<|endoftext|>"}) and len(kept.ids) <= 4
        chunks = stub.Chunk(pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=text)], max_tokens=3,
                                            special_tokens=listed), timeout=60).results[0].chunks  # fmt: skip
        assert chunks[-1].end == len(text) and [list(piece.ids) for piece in chunks] == [
            encoding.encode(text[piece.start : piece.end], allowed_special={"<|endoftext|>"}) for piece in chunks]
        with pytest.raises(grpc.RpcError) as refused:
            stub.Truncate(pb.TruncateRequest(model="cl100k_base", inputs=[pb.Input(text="ok"), pb.Input(text=text)], max_tokens=4), timeout=30)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "inputs[1]" in refused.value.details() and "<|endoftext|>" in refused.value.details()
        assert server.health_status() == "SERVING"


# A backreference (outside the native subset: the `regex` module runs it); the first alternative backtracks at
# every "a" of a run before "." takes it.
BACKREF = r"(a|aa)+\1b|\s+|."


def _backref_document() -> dict:
    from support.tokenizer_json import gpt2_tokenizer_json

    document = gpt2_tokenizer_json()
    document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": BACKREF}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}  # fmt: skip
    return document


@pytest.fixture(scope="module")
def backref_server(tmp_path_factory):
    import json

    from tokend.registry import Registry

    root = tmp_path_factory.mktemp("backref") / "models"
    root.mkdir()
    Registry.open(root).publish("backref", payload=json.dumps(_backref_document()).encode(), payload_format="hf_tokenizer_json",
                                provenance={"kind": "imported", "source": "a backtracking pattern (test)"})  # fmt: skip
    with start_server(registry=root, models=["backref"], workers=1, metrics=False) as server:
        yield server


def test_a_split_pattern_that_backtracks_runs_at_the_lowest_priority(backref_server):
    from tokenizers import Tokenizer
    import json

    pid = backref_server.worker_pids()[0]
    stub = backref_server.stub()
    reference = Tokenizer.from_str(json.dumps(_backref_document()))
    text = " ".join(["a" * 23 + "c"] * 6)  # backtracks for a while at each word, within the bound
    lane, total = _lane_cpu(pid), _all_cpu(pid)
    answer = stub.Encode(pb.EncodeRequest(model="backref", inputs=[pb.Input(text=text)]), timeout=60)
    lane_work, all_work = _lane_cpu(pid) - lane, _all_cpu(pid) - total
    assert list(answer.results[0].ids) == reference.encode(text).ids
    assert lane_work >= 0.7 * all_work and lane_work > 0, (lane_work, all_work)

    # one that backtracks for minutes: stopped by the fallback's bound (0.5 s + 10 us a character), at the
    # lowest priority too
    lane, total = _lane_cpu(pid), _all_cpu(pid)
    with pytest.raises(grpc.RpcError) as refused:
        stub.CountTokens(pb.CountTokensRequest(model="backref", inputs=[pb.Input(text="a" * 41 + "c")]), timeout=60)
    lane_work, all_work = _lane_cpu(pid) - lane, _all_cpu(pid) - total
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "backtracks" in refused.value.details()
    assert lane_work >= 0.7 * all_work and lane_work >= 0.3, (lane_work, all_work)

    # ordinary text of the same model: split at once on the handler thread (no hop), answered as tokenizers does
    lane = _lane_cpu(pid)
    for _ in range(50):
        counted = stub.CountTokens(pb.CountTokensRequest(model="backref", inputs=[pb.Input(text="hello world, b c")]), timeout=30)
    assert counted.total == len(reference.encode("hello world, b c").ids)
    assert _lane_cpu(pid) == lane


def test_calls_that_backtrack_never_hold_every_handler_thread(backref_server):
    """Eight at once, each backtracking for its whole bound: two run on the regex lane, two wait for it, the
    rest are refused at once (UNAVAILABLE, which clients retry), so at least four of a worker's eight handler
    threads stay free for other calls; meanwhile ordinary calls are answered."""
    from concurrent.futures import ThreadPoolExecutor

    stub = backref_server.stub()
    hostile = pb.CountTokensRequest(model="backref", inputs=[pb.Input(text="a" * 41 + "c")])

    def send(_: int) -> tuple[grpc.StatusCode, str]:
        try:
            stub.CountTokens(hostile, timeout=60)
        except grpc.RpcError as error:
            return error.code(), error.details()
        return grpc.StatusCode.OK, ""

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(8)))
        small = stub.CountTokens(pb.CountTokensRequest(model="backref", inputs=[pb.Input(text="b c")]), timeout=60)
    assert small.total > 0
    refused = [details for code, details in answers if code == grpc.StatusCode.UNAVAILABLE]
    assert len(refused) >= 4, answers
    assert all("split pattern backtracks" in details for details in refused), refused
    assert {code for code, _ in answers} <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION}, answers
