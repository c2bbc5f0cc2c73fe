"""Clients that never read their answers, against `tokend serve --workers 2` (issue 13): each worker's RSS and a
well-behaved CountTokens' latency while connections whose HTTP/2 window is 0 hold unary calls.

    python -m bench unread-answers [--calls 1000] [--connections 8] [--kind decode] [--server-arg=--max-work-bytes=...]

Kinds: ``decode`` — a Decode of 10,000 tokens of 128 bytes (30 KB of request, a 1.28 MB answer; estimated
within the work gate's 4 MiB of a small request); ``count`` — a CountTokens of one 2.1 MB piece (a 42 MB
reservation, a 10-byte answer). Prints, per worker, RSS before → peak → after the calls were sent (and again
``--hold`` seconds later), what the server answered the unread calls (status headers, resets), and the
well-behaved client's latencies meanwhile; with ``--large-beside``, how long a well-behaved large call then
takes to be answered (retrying UNAVAILABLE).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _memory(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["VmRSS"].split()[0]) // 1024


def _message(kind: str) -> tuple[str, bytes]:
    import tokend
    from tokend_api.v1 import tokenizer_pb2 as pb

    if kind == "decode":
        encoding = tokend.get_encoding("cl100k_base")
        token = next(i for i in range(100_000) if len(encoding.decode_single_token_bytes(i)) == 128)
        request = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[token] * 10_000)])
        return "/tokend.v1.Tokenizer/Decode", request.SerializeToString()
    request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello " * 350_000)])
    return "/tokend.v1.Tokenizer/CountTokens", request.SerializeToString()


def _latencies(target: str, calls: int = 50) -> list[float]:
    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    seconds = []
    for _ in range(calls):
        with grpc.insecure_channel(target) as channel:  # a new connection each: it may land on either worker
            stub = tokenizer_pb2_grpc.TokenizerStub(channel)
            started = time.perf_counter()
            stub.CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")]), timeout=30)
            seconds.append(time.perf_counter() - started)
    return seconds


def _large_call_wait(target: str, limit: float = 60.0) -> tuple[float, int, str]:
    """Seconds until a well-behaved client's large call (a count of one 2.1 MB piece: a 42 MB reservation) is
    answered, retrying UNAVAILABLE every 0.5 s, ``limit`` at most; how many it retried, and how it ended."""
    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello " * 350_000)])
    started, retried = time.monotonic(), 0
    with grpc.insecure_channel(target) as channel:
        stub = tokenizer_pb2_grpc.TokenizerStub(channel)
        while (left := limit - (time.monotonic() - started)) > 0:
            try:
                stub.CountTokens(request, timeout=left)
                return time.monotonic() - started, retried, "OK"
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    return time.monotonic() - started, retried, error.code().name
                retried += 1
                time.sleep(0.5)
    return time.monotonic() - started, retried, "gave up"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--kind", choices=("decode", "count"), default="decode")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hold", type=float, default=15.0, help="seconds to keep the connections open after sending")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--large-beside", action="store_true", help="then time a well-behaved client's large call")
    args = parser.parse_args(argv)
    for path in (str(REPO / "tests"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from support.raw_grpc import UnreadCalls
    from tests.support.server import TokendServer

    method, message = _message(args.kind)
    server_args = [part for arg in args.server_arg for part in arg.split("=", 1)]
    server = TokendServer(*server_args, workers=args.workers, metrics=False, reload_interval=0).start()
    try:
        pids = server.worker_pids()
        idle = _latencies(server.target)
        before = {pid: _memory(pid)[1] for pid in pids}
        host, port = server.target.rsplit(":", 1)
        connections = [UnreadCalls(host, int(port)) for _ in range(args.connections)]
        started = time.monotonic()
        for index in range(args.calls):
            connections[index % len(connections)].send(method, message)
        sent = time.monotonic() - started
        for connection in connections:
            connection.events(seconds=0.1)
        time.sleep(1.0)
        after_send = {pid: _memory(pid) for pid in pids}
        beside = _latencies(server.target)
        large = _large_call_wait(server.target) if args.large_beside else None
        time.sleep(max(0.0, args.hold - 1.0))
        held = {pid: _memory(pid) for pid in pids}
        events = [event for connection in connections for event in connection.events(seconds=0.1)]
        for connection in connections:
            connection.close()
    finally:
        server.stop()
    statuses: dict[str, int] = {}
    for event in events:
        name = type(event).__name__
        if hasattr(event, "headers"):
            status = dict(event.headers).get("grpc-status")
            if status is not None:
                statuses[f"status {status}"] = statuses.get(f"status {status}", 0) + 1
        elif name == "StreamReset":
            statuses["reset"] = statuses.get("reset", 0) + 1
    print(f"{args.calls} {args.kind} calls on {args.connections} connections, sent in {sent:.1f} s; server args {server_args}")
    for pid in pids:
        print(f"worker {pid}: RSS {before[pid]} MiB -> {after_send[pid][1]} MiB 1 s after sending "
              f"(peak {held[pid][0]}) -> {held[pid][1]} MiB {args.hold:g} s after")  # fmt: skip
    print(f"answers seen by the unread client: {statuses}")
    print(f"CountTokens on fresh connections: idle p50 {statistics.median(idle) * 1e3:.1f} ms max {max(idle) * 1e3:.1f} ms; "
          f"beside p50 {statistics.median(beside) * 1e3:.1f} ms max {max(beside) * 1e3:.1f} ms")  # fmt: skip
    if large is not None:
        print(f"a well-behaved large CountTokens (one 2.1 MB piece), sent after: {large[2]} after {large[0]:.1f} s, "
              f"{large[1]} UNAVAILABLE retried")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
