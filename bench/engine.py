"""Engine benchmark: tokend's Encoding beside the fastest exact tokenizers, measured in the same run.

    python -m bench engine                    # full run (~5-10 min on 2 shared cores), writes docs/bench-engine.md + .png
    python -m bench engine --quick            # small texts, 2 rounds, 256 KB pieces: a smoke run in well under a minute
    python -m bench engine --peers tokend,tiktoken,fastokens --sections throughput,cold

Peers (bench/peers.py, installed by bench/requirements.txt, all offline): tiktoken, quicktok, fastokens,
rs-bpe (GitHub's rust-gems `bpe`), splintr; kitoken on request. Each is checked exact against tiktoken on
every text of a cell before it is timed there (bench/exactness.py).

Sections:
- throughput: one thread, encode and count MB/s for cl100k_base and o200k_base on English / code /
  multilingual (tests/corpus.py). Documents are split by a hash into a warm-up set and measurement
  parts; every round builds every peer anew, warms it on the warm-up set and measures text it has not
  seen (bench/throughput.py). Ratios are taken within a round, then the median over rounds.
- worst: one 1 MB piece (repeated letter, random letters, random lowercase letters, repeated emoji) per
  peer, each in its own process with a time limit; memory: peak RSS growth for one 8 MiB piece (bench/worst_case.py).
- threads: encode_ordinary_batch / count_batch with 2 threads against 1 (bench/threads.py).
- cold: import + load + first encode in a fresh process (bench/cold_start.py).
- training: tokend's trainer, vocab 4,096 on ~10 MB of English (no peer trains).
The machine is shared: absolute MB/s move between runs; the ratios of one run are what count.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import cold_start, engine_chart, engine_report, threads, worst_case
from bench._oracle import tiktoken_encoding
from bench.corpora import KINDS, measurement_corpora
from bench.exactness import Exactness, check_exact
from bench.peers import DEFAULT_PEERS, Peer, Unavailable, load_peer
from bench.throughput import measure_cell

# Sections other benchmarks write into the same report (`python -m bench families`, `... sentencepiece`,
# `... family-worst`).
_CARRIED_SECTIONS = (re.compile(r"<!-- families -->.*<!-- /families -->", re.S),
                     re.compile(r"<!-- sentencepiece -->.*<!-- /sentencepiece -->", re.S),
                     re.compile(r"<!-- family-worst -->.*<!-- /family-worst -->", re.S))

__all__ = ["ENCODINGS", "KINDS", "EngineRun", "main"]

ENCODINGS = ("cl100k_base", "o200k_base")
TARGETS = {"encode": 1.0, "count": 1.2}  # issue 18: ratio to fastokens, one thread, every cell
BASELINE = "fastokens"


@dataclass
class EngineRun:
    """Everything one run measured; engine_report turns it into markdown, engine_chart into a PNG."""

    quick: bool
    rounds: int
    peers: list[str]
    labels: dict[str, str] = field(default_factory=dict)  # key -> "fastokens 0.3.5"
    calls: dict[str, str] = field(default_factory=dict)  # key -> the calls timed
    unavailable: dict[str, str] = field(default_factory=dict)  # key -> reason
    corpus: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> {"warm": MB, "encode": MB, ...}
    exactness: dict[tuple[str, str], dict[str, Exactness]] = field(default_factory=dict)  # (encoding, kind) -> key -> verdict
    rates: list[dict[tuple[str, str, str, str], float]] = field(default_factory=list)  # per round: (enc, kind, op, key) -> MB/s
    worst: dict[str, list] = field(default_factory=dict)  # encoding -> [PieceResult]
    memory: list = field(default_factory=list)
    piece_size: int = 0
    worst_runs: int = 1  # fresh processes per worst-case cell (its median is shown)
    memory_size: int = 0
    scaling: list = field(default_factory=list)
    cold: list = field(default_factory=list)
    training: str | None = None
    started: str = ""
    load_before: tuple[float, ...] = ()
    load_after: tuple[float, ...] = ()
    seconds: float = 0.0

    def median_rate(self, encoding: str, kind: str, operation: str, key: str) -> float | None:
        values = [r[(encoding, kind, operation, key)] for r in self.rates if (encoding, kind, operation, key) in r]
        return statistics.median(values) if values else None

    def median_ratio(self, encoding: str, kind: str, operation: str, key: str, other: str) -> float | None:
        """Median over rounds of (key's MB/s ÷ other's MB/s) measured in the same round."""
        values = [r[(encoding, kind, operation, key)] / r[(encoding, kind, operation, other)] for r in self.rates
                  if (encoding, kind, operation, key) in r and (encoding, kind, operation, other) in r]
        return statistics.median(values) if values else None


def _check_exactness(run: EngineRun, corpora, encoding: str) -> None:
    from tests.corpus import edge_cases

    oracle = tiktoken_encoding(encoding)
    peers = {key: load_peer(key, encoding) for key in run.peers}
    for key, peer in peers.items():
        if isinstance(peer, Unavailable):
            run.unavailable[key] = peer.reason
        else:
            run.labels[key], run.calls[key] = peer.label, peer.calls
    texts_by_kind = {kind: warm + parts["encode"] + parts["count"] for kind, (warm, parts) in corpora.items()}
    texts_by_kind["edge"] = [text for text in edge_cases() if "<|" not in text]
    for kind, texts in texts_by_kind.items():
        expected = {text: oracle.encode_ordinary(text) for text in texts}
        verdicts = {}
        for key, peer in peers.items():
            if isinstance(peer, Peer):
                verdicts[key] = check_exact(peer.encode, peer.count, expected.__getitem__, texts)
                _log(f"exactness {encoding} {kind} {key}: {verdicts[key].summary()}")
        run.exactness[(encoding, kind)] = verdicts


def _throughput(run: EngineRun, corpora) -> None:
    for round_index in range(run.rounds):
        rates: dict[tuple[str, str, str, str], float] = {}
        for encoding in ENCODINGS:
            fresh = [load_peer(key, encoding) for key in run.peers if key not in run.unavailable]
            fresh = [peer for peer in fresh if isinstance(peer, Peer)]
            for kind in KINDS:
                warm, parts = corpora[kind]
                exact = [peer for peer in fresh if run.exactness[(encoding, kind)][peer.key].exact]
                for (key, operation), rate in measure_cell(exact, warm, parts).items():
                    rates[(encoding, kind, operation, key)] = rate
                line = " ".join(f"{peer.key}={rates[(encoding, kind, 'encode', peer.key)]:.0f}" for peer in exact)
                _log(f"round {round_index + 1}/{run.rounds} {encoding} {kind} encode MB/s: {line}")
        run.rates.append(rates)


def _training(quick: bool) -> str:
    from tests.corpus import corpus_texts
    from tokend.engine import train

    texts = corpus_texts(limit_bytes=1_000_000 if quick else 10_000_000, kinds=("english",))
    megabytes = sum(len(text.encode("utf-8")) for text in texts) / 1e6
    started = time.process_time()
    result = train(texts, 4096)
    elapsed = time.process_time() - started
    return (f"Training (tokend only; no peer trains): vocab 4,096 ({len(result.merges)} merges, GPT-4 pattern) on "
            f"{megabytes:.1f} MB of English: **{elapsed:.1f} s** CPU")


def run(args: argparse.Namespace) -> EngineRun:
    quick = args.quick
    sections = set(args.sections.split(","))
    result = EngineRun(quick=quick, rounds=args.rounds or (2 if quick else 7), peers=args.peers.split(","))
    result.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result.load_before = os.getloadavg()
    began = time.perf_counter()
    corpora = measurement_corpora(args.limit_bytes or (300_000 if quick else 4_000_000))
    for kind, (warm, parts) in corpora.items():
        result.corpus[kind] = {"warm": _mb(warm), **{name: _mb(texts) for name, texts in parts.items()}}
    if "throughput" in sections:
        for encoding in ENCODINGS:
            _check_exactness(result, corpora, encoding)
        _throughput(result, corpora)
    available = [key for key in result.peers if key not in result.unavailable]
    if "worst" in sections:
        result.piece_size = 250_000 if quick else 1_000_000
        result.worst_runs = 1 if quick else 3
        for encoding in ENCODINGS:
            result.worst[encoding] = worst_case.measure_pieces(available, encoding, size=result.piece_size,
                                                               timeout=30 if quick else 60, runs=result.worst_runs)
            _log(f"worst case {encoding}: " + ", ".join(f"{r.peer}/{r.piece}={r.cell()}" for r in result.worst[encoding]))
        result.memory_size = (1 << 20) if quick else (8 << 20)
        result.memory = worst_case.measure_memory(available, "cl100k_base", size=result.memory_size,
                                                  timeout=60 if quick else 180)
    if "threads" in sections:
        warm = corpora["english"][0][:40] + corpora["code"][0][:40]
        batch = [text for kind in KINDS for text in corpora[kind][1]["encode"]]
        result.scaling = threads.measure_scaling(available, "cl100k_base", warm, batch, rounds=1 if quick else 5)
    if "cold" in sections:
        for encoding in ENCODINGS:
            result.cold += cold_start.measure_cold_start(available, encoding, runs=2 if quick else 5)
    if "training" in sections:
        result.training = _training(quick)
    result.load_after = os.getloadavg()
    result.seconds = time.perf_counter() - began
    return result


def _mb(texts: list[str]) -> float:
    return sum(len(text.encode("utf-8")) for text in texts) / 1e6


def _log(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small texts, 2 rounds, small worst-case pieces")
    parser.add_argument("--rounds", type=int, default=0, help="rounds of the throughput section (default 7, quick 2)")
    parser.add_argument("--peers", default=",".join(DEFAULT_PEERS), help="comma-separated peer keys (bench/peers.py)")
    parser.add_argument("--sections", default="throughput,worst,threads,cold,training")
    parser.add_argument("--limit-bytes", type=int, default=0, help="corpus bytes per kind (default 4 MB, quick 300 kB)")
    parser.add_argument("--out", default="docs/bench-engine.md", help="markdown report path ('' = do not write)")
    parser.add_argument("--chart", default="docs/bench-engine.png", help="chart path ('' = no chart)")
    args = parser.parse_args(argv)
    if "tokend" not in args.peers.split(","):
        parser.error("--peers must include tokend (every ratio is tokend's)")
    result = run(args)
    command = "python -m bench engine" + (" " + " ".join(argv) if argv else "")
    report = engine_report.render(result, command=command, chart=Path(args.chart).name if args.chart else None)
    sys.stdout.write(report)
    if args.out:
        path = Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        # The families and SentencePiece sections belong to their own benchmarks: carried over, not dropped.
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        kept = [match.group() for match in (section.search(old) for section in _CARRIED_SECTIONS) if match]
        path.write_text("\n\n".join([report.rstrip("\n"), *kept]) + "\n", encoding="utf-8")
    if args.chart and result.rates:
        engine_chart.draw(result, Path(args.chart))
    return 0
