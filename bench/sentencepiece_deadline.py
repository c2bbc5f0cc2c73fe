"""A long SentencePiece encode past its caller's deadline: the server's CPU (issue 13).

    python -m bench sentencepiece-deadline [--megabytes 8] [--deadline 1.0]

Publishes botchan's Unigram model plus 256 nested pieces ("a" … "a"×256, the crafted file of
tests/engine/sentencepiece/test_model_file.py) into a temporary registry, starts `tokend serve` with one worker,
and sends CountTokens of `--megabytes` MB of "a" twice: once with a `--deadline` s deadline, once without one
but cancelled by the client after `--deadline` s. For each: the status the client saw and the CPU the server's
process group spent from the call until it is idle again (before the call stop: ~13.8 s for 8 MB either way).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _group_cpu(pgid: int) -> float:
    """User + system seconds of every process in the process group."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _until_idle(pgid: int) -> float:
    last = _group_cpu(pgid)
    while True:
        time.sleep(0.5)
        now = _group_cpu(pgid)
        if now - last < 0.05:
            return now
        last = now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench sentencepiece-deadline")
    parser.add_argument("--megabytes", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=1.0)
    args = parser.parse_args(argv)
    for path in (str(REPO / "tests"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import grpc
    from support.server import TokendServer
    from tokend_api.v1 import tokenizer_pb2 as pb

    from tests.engine.sentencepiece.test_model_file import _nested_unigram
    from tokend.registry import Registry
    from tokend.registry.importing import import_files

    with tempfile.TemporaryDirectory() as directory:
        model = Path(directory) / "nested.model"
        model.write_bytes(_nested_unigram(256))
        registry = Registry.open(Path(directory) / "models", create=True)
        import_files(registry, [model], name="nested", provenance={"kind": "imported"})
        server = TokendServer(registry=Path(directory) / "models", workers=1).start()
        try:
            pgid = os.getpgid(server.process.pid)
            stub = server.stub()
            stub.CountTokens(pb.CountTokensRequest(model="nested", inputs=[pb.Input(text="warm up")]), timeout=30)
            request = pb.CountTokensRequest(model="nested", inputs=[pb.Input(text="a" * (args.megabytes << 20))])
            for how in ("deadline", "cancel"):
                time.sleep(1.0)
                before = _group_cpu(pgid)
                if how == "deadline":
                    try:
                        stub.CountTokens(request, timeout=args.deadline)
                        status = "OK"
                    except grpc.RpcError as exc:
                        status = exc.code().name
                else:
                    future = stub.CountTokens.future(request, timeout=600)
                    time.sleep(args.deadline)
                    future.cancel()
                    status = "CANCELLED (by the client)"
                print(f"{args.megabytes} MB, {how} at {args.deadline:g} s: {status}; "
                      f"server CPU {_until_idle(pgid) - before:.2f} s")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
