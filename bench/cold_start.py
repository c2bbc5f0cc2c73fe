"""Cold start: import + load an encoding + the first encode, in a fresh interpreter, per peer.

    rows = measure_cold_start(["tokend", "tiktoken", "fastokens"], "cl100k_base", runs=5)

What a short-lived process (a CLI call, a serverless function, a worker that just started) pays before its
first answer. The child times itself from before the import to after the first `encode("hello world")`
(`time.perf_counter`), so interpreter start-up, equal for all, is left out; the median of `runs` fresh
processes is reported, the peers taking turns. Files are read from local disk (the OS page cache is warm
after the first run: this is a warm-disk cold start, as on a machine that has run the tool before).

Every peer starts from bytecode: tokend's modules are compiled first (`compileall`, what installing its
wheel does, as pip did for the peers). A development checkout under PYTHONDONTWRITEBYTECODE=1 would
otherwise compile tokend's sources in every child, 20-40 ms that no installed copy pays.
"""

from __future__ import annotations

import compileall
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from bench._oracle import rank_file_path, tiktoken_cache_dir

__all__ = ["ColdStart", "measure_cold_start"]


@dataclass(frozen=True)
class ColdStart:
    peer: str
    encoding: str
    seconds: float | None  # median
    runs: int
    error: str | None = None


def _loaders(encoding: str) -> dict[str, str]:
    from tokend.engine import OPENAI_ENCODINGS

    spec = OPENAI_ENCODINGS[encoding]
    return {
        "tokend": f"import tokend\nenc = tokend.get_encoding({encoding!r})\nenc.encode('hello world')",
        "tiktoken": f"import tiktoken\nenc = tiktoken.get_encoding({encoding!r})\nenc.encode('hello world')",
        "quicktok": f"import quicktok\nenc = quicktok.get_encoding({encoding!r})\nenc.encode('hello world')",
        "fastokens": (
            "import fastokens\n"
            f"enc = fastokens.Tokenizer.from_tiktoken({str(rank_file_path(encoding))!r}, "
            f"special_tokens={dict(spec.special_tokens)!r}, encoding={encoding!r})\nenc.encode_ordinary('hello world').ids"
        ),
        "rs-bpe": f"from rs_bpe.bpe import openai\nenc = openai.{encoding}()\nenc.encode('hello world')",
        "splintr": f"import splintr\nenc = splintr.Tokenizer.from_pretrained({encoding!r})\nenc.encode('hello world')",
    }


def measure_cold_start(peers: Sequence[str], encoding: str, *, runs: int, timeout: float = 60) -> list[ColdStart]:
    tiktoken_cache_dir()  # TIKTOKEN_CACHE_DIR in the environment the children inherit
    _compile_tokend()
    loaders = _loaders(encoding)
    wanted = [peer for peer in peers if peer in loaders]
    seconds: dict[str, list[float]] = {peer: [] for peer in wanted}
    errors: dict[str, str] = {}
    for _ in range(runs):
        for peer in wanted:
            if peer in errors:
                continue
            outcome = _child(loaders[peer], timeout)
            if isinstance(outcome, str):
                errors[peer] = outcome
            else:
                seconds[peer].append(outcome)
    rows = [ColdStart(peer, encoding, statistics.median(seconds[peer]) if seconds[peer] else None, len(seconds[peer]),
                      errors.get(peer)) for peer in wanted]
    rows += [ColdStart(peer, encoding, None, 0, "no cold-start recipe") for peer in peers if peer not in loaders]
    return rows


def _compile_tokend() -> None:
    import tokend
    import tokend_api

    for package in (tokend, tokend_api):
        compileall.compile_dir(os.path.dirname(package.__file__), quiet=1)


def _child(body: str, timeout: float) -> float | str:
    program = (
        "import time\n_started = time.perf_counter()\n" + body + "\n"
        "import json, sys\nsys.stdout.write(json.dumps(time.perf_counter() - _started))\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return f"> {timeout:g} s"
    if done.returncode != 0:
        return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:160]}"
    return float(json.loads(done.stdout))
