"""Large ChunkStreams holding a worker's work budget, and well-behaved calls beside them, against `tokend serve
--workers 2` (issue 13): what the well-behaved calls get while the budget is held.

    python -m bench stream-room [--hostile reopen|back-to-back|none] [--seconds 40] [--server-arg=--flag=value ...]

Every client pins one worker (it opens connections until one is answered by that worker's ``tokend-worker``).
Hostile clients: ``reopen`` — one client opens a ChunkStream of a 4.4 MB document (its reservation is the whole
budget: 2 × an encode's working memory of it, capped), takes the first answer, reads nothing more and cancels it
0.9-2 s later (before the room charge of 1 s ends it), on a new connection each time, for ever; ``back-to-back``
— two clients stream the same document and read every answer at once, one stream after another; with
``--unread-every``, also a client whose Decodes of 1.28 MB are never read (a window of 0). Beside them
(same worker): a 700 KB CountTokens every 0.5 s (a large request: 13 MiB reserved), and three threads of small
requests whose answers take room in the budget (≥ 16 KiB): Encodes of 60 KB (a ~30 KB answer) and of 120 KB
(~60 KB) every 20 ms, Decodes of 10,000 tokens of 128 bytes (1.28 MB) every 50 ms (``--decoders`` threads of
them), each checked against tiktoken
(a refused call waits 50 ms more, as a retrying client would). Prints, per kind,
answered / refused (UNAVAILABLE, by message) / other, the latencies, and the worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _words(count: int, seed: int) -> str:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(count))


def _peak_mib(pid: int) -> int:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) // 1024


class _Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: dict[str, Counter] = {}
        self.seconds: dict[str, list[float]] = {}
        self.wrong: Counter = Counter()

    def add(self, kind: str, outcome: str, seconds: float | None = None) -> None:
        with self.lock:
            self.outcomes.setdefault(kind, Counter())[outcome] += 1
            if seconds is not None:
                self.seconds.setdefault(kind, []).append(seconds)


def _pinned(target: str, worker: int, *, bdp_probe: bool = True):
    """A channel whose connection is served by ``worker`` (pid)."""
    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    options = [("grpc.use_local_subchannel_pool", 1)] + ([] if bdp_probe else [("grpc.http2.bdp_probe", 0)])
    for _ in range(200):
        channel = grpc.insecure_channel(target, options=options)
        try:
            _, call = pb_grpc.TokenizerStub(channel).CountTokens.with_call(
                pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]), timeout=10
            )
            if int(dict(call.initial_metadata())["tokend-worker"]) == worker:
                return channel
        except grpc.RpcError:
            pass
        channel.close()
    raise RuntimeError(f"no connection landed on worker {worker}")


def _reopening(target: str, worker: int, document: str, stop: threading.Event, results: _Results) -> None:
    """Opens the document's stream, takes one answer, cancels it 0.9-2 s later; again on a new connection."""
    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    rng = random.Random(7)
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=50)
    while not stop.is_set():
        channel = _pinned(target, worker, bdp_probe=False)
        try:
            call = pb_grpc.TokenizerStub(channel).ChunkStream(request, timeout=120)
            try:
                next(call)
                results.add("hostile stream", "first answer")
            except grpc.RpcError as error:
                results.add("hostile stream", error.code().name)
            stop.wait(rng.uniform(0.9, 2.0))
            call.cancel()
        finally:
            channel.close()


def _back_to_back(target: str, worker: int, document: str, stop: threading.Event, results: _Results) -> None:
    """Streams the document, reading every answer at once; again."""
    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=50)
    channel = _pinned(target, worker)
    stub = pb_grpc.TokenizerStub(channel)
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                ends = [chunk.end for message in stub.ChunkStream(request, timeout=120) for chunk in message.chunks]
                results.add("reading stream", "OK" if ends[-1] == len(document) else "short", time.monotonic() - started)
            except grpc.RpcError as error:
                results.add("reading stream", error.code().name, time.monotonic() - started)
    finally:
        channel.close()


def _unread_decodes(target: str, worker: int, every: float, stop: threading.Event, results: _Results) -> None:
    """A client that sends a Decode of 1.28 MB every ``every`` seconds on a connection whose window is 0 (its answers
    are never read: each holds 3.84 MiB of room until it is cancelled, ~11 s, or once a second old when another
    answer finds no room)."""
    import h2.events
    import tiktoken
    from support.raw_grpc import UnreadCalls
    from tokend_api.v1 import tokenizer_pb2 as pb

    oracle = tiktoken.get_encoding("cl100k_base")
    token = next(i for i in range(100_000) if len(oracle.decode_single_token_bytes(i)) == 128)
    decode = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[token] * 10_000)]).SerializeToString()
    hello = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]).SerializeToString()
    host, port = target.rsplit(":", 1)
    while True:  # a connection of the worker's: its first call's headers name it
        connection = UnreadCalls(host, int(port))
        (stream,) = connection.send("/tokend.v1.Tokenizer/CountTokens", hello)
        deadline = time.monotonic() + 10
        answered = None
        while answered is None and time.monotonic() < deadline:
            for event in connection.events(seconds=0.05):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    answered = int(dict(event.headers).get("tokend-worker", 0))
        if answered == worker:
            break
        connection.close()
    seen = 0
    try:
        while not stop.is_set():
            connection.send("/tokend.v1.Tokenizer/Decode", decode)
            results.add("unread decodes", "sent")
            stop.wait(every)
            events = connection.events(seconds=0.01)
            for event in events[seen:]:
                headers = dict(getattr(event, "headers", None) or ())
                if "grpc-status" in headers and headers["grpc-status"] != "0":
                    results.add("unread decodes", f"status {headers['grpc-status']}")
                elif isinstance(event, h2.events.StreamReset):
                    results.add("unread decodes", "reset")
            seen = len(events)
    finally:
        connection.close()


def _well_behaved(target: str, worker: int, kind: str, every: float, stop: threading.Event, results: _Results) -> None:
    import grpc
    import tiktoken
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    oracle = tiktoken.get_encoding("cl100k_base")
    if kind == "count 700 KB":
        text = _words(107_000, seed=11)
        request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
        expected = len(oracle.encode_ordinary(text))
        method, check = "CountTokens", lambda answer: answer.total == expected
    elif kind.startswith("encode"):
        text = _words(9_000 if kind == "encode 60 KB" else 18_000, seed=12)
        request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
        expected_ids = oracle.encode_ordinary(text)
        method, check = "Encode", lambda answer: list(answer.results[0].ids) == expected_ids
    else:
        token = next(i for i in range(100_000) if len(oracle.decode_single_token_bytes(i)) == 128)
        request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[token] * 10_000)])
        expected_bytes = oracle.decode_bytes([token] * 10_000)
        method, check = "Decode", lambda answer: answer.results[0].text.encode() == expected_bytes
    channel = _pinned(target, worker)
    call = getattr(pb_grpc.TokenizerStub(channel), method)
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                answer = call(request, timeout=15)
                results.add(kind, "OK", time.monotonic() - started)
                if not check(answer):
                    results.wrong[kind] += 1
            except grpc.RpcError as error:
                detail = (error.details() or "")[:40]
                results.add(kind, f"{error.code().name} {detail}")
                stop.wait(0.05)  # a client's retry pause
            stop.wait(every)
    finally:
        channel.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostile", choices=("reopen", "back-to-back", "none"), default="reopen")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--decoders", type=int, default=1, help="threads of Decodes of 1.28 MB (each its own connection)")
    parser.add_argument("--unread-every", type=float, default=0.0,
                        help="also a client sending a Decode of 1.28 MB this often that it never reads (0: none)")
    parser.add_argument("--server-arg", action="append", default=[])
    args = parser.parse_args(argv)
    for path in (str(REPO / "tests"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from tests.support.server import TokendServer

    document = _words(680_000, seed=3)  # 4.4 MB
    server_args = [part for arg in args.server_arg for part in arg.split("=", 1)]
    server = TokendServer(*server_args, workers=2, metrics=False, reload_interval=0, models=["cl100k_base"]).start()
    stop, results = threading.Event(), _Results()
    try:
        worker = server.worker_pids()[0]
        peak_before = _peak_mib(worker)
        hostile = {"reopen": [_reopening], "back-to-back": [_back_to_back, _back_to_back], "none": []}[args.hostile]
        threads = [threading.Thread(target=run, args=(server.target, worker, document, stop, results), daemon=True)
                   for run in hostile]  # fmt: skip
        if args.unread_every > 0:
            threads.append(threading.Thread(target=_unread_decodes, args=(server.target, worker, args.unread_every, stop,
                                                                          results), daemon=True))  # fmt: skip
        callers = [("count 700 KB", 0.5), ("encode 60 KB", 0.02), ("encode 120 KB", 0.02)]
        for kind, every in callers + [("decode 1.28 MB", 0.05)] * args.decoders:
            threads.append(threading.Thread(target=_well_behaved, args=(server.target, worker, kind, every, stop, results),
                                            daemon=True))  # fmt: skip
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in threads:
            thread.join(60)
        peak = _peak_mib(worker)
    finally:
        server.stop()
    print(f"hostile: {args.hostile}, {args.seconds:g} s, {args.decoders} decoders, unread every {args.unread_every:g} s, "
          f"server args {server_args}; "
          f"worker peak RSS {peak_before} -> {peak} MiB")  # fmt: skip
    for kind in sorted(results.outcomes):
        outcomes = results.outcomes[kind]
        seconds = results.seconds.get(kind, [])
        timing = (f"; p50 {statistics.median(seconds):.3f} s, max {max(seconds):.2f} s" if seconds else "")
        wrong = f"; {results.wrong[kind]} WRONG" if results.wrong[kind] else ""
        print(f"  {kind}: {dict(outcomes)}{timing}{wrong}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
