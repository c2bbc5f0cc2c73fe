r"""Worst case: one huge piece (no whitespace, so the split cannot cut it) per peer, each in its own process.

    rows = measure_pieces(["tokend", "fastokens"], "cl100k_base", size=1_000_000, timeout=60)
    rows = measure_memory(["tokend"], "cl100k_base", size=8 << 20, timeout=120)

Pieces (`size` bytes of UTF-8 each): one repeated letter, random ASCII letters (seeded), random lowercase
ASCII letters (seeded), one repeated emoji. Random letters of both cases are one piece under cl100k_base's
`\p{L}+`, but o200k_base's letter rule ends a piece before every capital that follows a small letter (1 MB
of them is ~250,000 short pieces there): random lowercase letters are one piece under every pattern.
Each (peer, piece) runs in a fresh subprocess with a time limit, so a peer that is quadratic, runs
out of memory or crashes costs one row ("> 60 s", "crashed"), not the run. The child times the call in
CPU seconds, then checks its ids against tiktoken's.

Memory: peak RSS growth of a child while it encodes (and, separately, counts) one `size`-byte piece of
random letters. The peak is reset just before the call (Linux: `5` > /proc/self/clear_refs resets
VmHWM; elsewhere ru_maxrss, which also holds the peak of loading), so the figure is what the call itself
needed, the result included. Issue 18's yardstick is "peak RSS for an 8 MiB single piece ≤ 2× its size in
ids", and "size in ids" is taken as what the call hands back:
- `encode`: the returned list as it sits in memory (`result_bytes`): `sys.getsizeof` of the list (8 bytes
  a slot) plus every distinct int object it refers to, except the interpreter's cached -5..256, at its
  allocated size (28 bytes -> a 32-byte block). A library that makes an int per id pays ~40 bytes an id;
  one that hands out the model's own int objects (tokend) ~8. Counting those shared objects makes the
  yardstick a little larger than what that call allocated (a few thousand distinct ids: well under 1%).
- `count`: the ids as a C array of uint32 (4 bytes an id), since no list is returned: what an engine
  that kept the ids would hold at least.
Both figures are printed for both calls.
"""

from __future__ import annotations

import json
import os
import random
import resource
import string
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["PIECES", "PieceResult", "measure_memory", "measure_pieces", "piece_text"]

PIECES = ("repeated letter", "random letters", "random lowercase letters", "repeated emoji")
_REPO = Path(__file__).resolve().parent.parent


def piece_text(kind: str, size: int) -> str:
    """`size` UTF-8 bytes without whitespace: one piece under every split pattern but o200k-style letter rules,
    which cut "random letters" before each capital (see the module's docstring)."""
    if kind == "repeated letter":
        return "a" * size
    if kind == "random letters":
        return "".join(random.Random(1).choices(string.ascii_letters, k=size))
    if kind == "random lowercase letters":
        return "".join(random.Random(1).choices(string.ascii_lowercase, k=size))
    if kind == "repeated emoji":
        return "\N{GRINNING FACE}" * (size // 4)  # 4 bytes each
    raise ValueError(f"unknown piece {kind!r}; choose from {PIECES}")


@dataclass(frozen=True)
class PieceResult:
    peer: str
    piece: str
    operation: str
    seconds: float | None = None  # CPU seconds of the call
    ids: int | None = None
    exact: bool | None = None
    rss_growth: int | None = None  # bytes: peak RSS during the call minus RSS before it
    result_bytes: int | None = None  # bytes of the returned list and the int objects it holds (encode only)
    error: str | None = None  # "> 60 s", "crashed (exit -9)", "not installed ...", ...

    def cell(self) -> str:
        if self.error:
            return self.error
        mark = "" if self.exact in (True, None) else " (NOT exact)"
        return f"{self.seconds:.3f}{mark}"


def measure_pieces(peers: list[str], encoding: str, *, size: int, timeout: float, runs: int = 3) -> list[PieceResult]:
    """Each (peer, piece) in `runs` fresh processes, taken in rounds (every cell once a round, so a slow spell of
    the machine falls on every peer alike); a cell is the median CPU seconds of its runs. One fresh process moved a
    cell by up to 1.6x between runs on this VM (0.022-0.036 s), so one run could not place a cell near 20 ms; the
    ids are checked against tiktoken in the first round only (the same input each round)."""
    rounds = [[_child(peer, encoding, piece, "encode", size, timeout, check=index == 0) for peer in peers for piece in PIECES]
              for index in range(max(1, runs))]
    return [_median_of(results) for results in zip(*rounds)]


def _median_of(results: tuple[PieceResult, ...]) -> PieceResult:
    """The first run's result with the median of the runs' seconds; the first failure of any run if one failed."""
    failed = [result for result in results if result.error]
    if failed:
        return failed[0]
    seconds = sorted(result.seconds for result in results)
    middle = len(seconds) // 2
    median = seconds[middle] if len(seconds) % 2 else (seconds[middle - 1] + seconds[middle]) / 2
    return replace(results[0], seconds=median)


def measure_memory(peers: list[str], encoding: str, *, size: int, timeout: float) -> list[PieceResult]:
    return [_child(peer, encoding, "random letters", operation, size, timeout, check=False)
            for peer in peers for operation in ("count", "encode")]


def _child(peer: str, encoding: str, piece: str, operation: str, size: int, timeout: float, *, check: bool):
    command = [sys.executable, "-m", "bench.worst_case", peer, encoding, piece, operation, str(size)]
    command += ["--check"] if check else []
    try:
        done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PieceResult(peer, piece, operation, error=f"> {timeout:g} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:160]
        return PieceResult(peer, piece, operation, error=f"failed (exit {done.returncode}: {last})")
    return PieceResult(peer, piece, operation, **json.loads(done.stdout.strip().splitlines()[-1]))


def _rss() -> int:
    return _status_kib("VmRSS") * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak(reset: bool) -> int:
    if reset:
        return _status_kib("VmHWM") * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _run_child(peer_key: str, encoding: str, piece: str, operation: str, size: int, check: bool) -> dict:
    import gc

    from bench.peers import Unavailable, load_peer

    peer = load_peer(peer_key, encoding)
    if isinstance(peer, Unavailable):
        return {"error": peer.reason}
    text = piece_text(piece, size)
    function = peer.count if operation == "count" else peer.encode
    function("warm up " * 4)
    gc.collect()
    before = _rss()
    reset = _reset_peak()
    started = time.process_time()
    result = function(text)
    seconds = time.process_time() - started
    growth = _peak(reset) - before
    ids = result if isinstance(result, int) else len(result)
    result_bytes = None if isinstance(result, int) else _list_bytes(result)
    exact = None
    if check:
        from bench._oracle import tiktoken_encoding

        expected = tiktoken_encoding(encoding).encode_ordinary(text)
        exact = list(result) == expected if operation == "encode" else ids == len(expected)
    return {"seconds": seconds, "ids": ids, "exact": exact, "rss_growth": growth, "result_bytes": result_bytes}


def _list_bytes(result) -> int:
    """The returned ids as they sit in memory: the list's slots plus each distinct int object outside the
    interpreter's small-int cache, at its allocated size (pymalloc rounds up to 16 bytes)."""
    objects = {id(value): value for value in result if not -5 <= value <= 256}
    return sys.getsizeof(result) + sum((sys.getsizeof(value) + 15) // 16 * 16 for value in objects.values())


if __name__ == "__main__":  # the child: python -m bench.worst_case PEER ENCODING PIECE OPERATION SIZE [--check]
    arguments = [argument for argument in sys.argv[1:] if argument != "--check"]
    outcome = _run_child(*arguments[:4], int(arguments[4]), check="--check" in sys.argv)
    sys.stdout.write(json.dumps(outcome) + "\n")
    os._exit(0)  # skip interpreter teardown of huge objects: the numbers are already out
