"""Engine benchmark: tokend's Encoding beside tiktoken (Rust) in the same run, as MB/s and ratios.

    python -m bench engine            # full run, writes docs/bench-engine.md
    python -m bench engine --quick    # smaller texts, training on 1 MB (for a smoke run)

Method (see issue 2):
- Text: tests/corpus.py per kind (english, code, multilingual). Documents are split by a hash into a
  warm-up set and a measurement set, so steady state is measured on text *different* from the warm-up
  (no cache replay). The measurement set is split again into three disjoint parts, one per operation
  (encode, encode_ordinary, count), so one operation does not warm the cache for the next.
- Steady: ours after encoding the warm-up set; tiktoken has no cache, it is always "steady".
- Cold: a freshly constructed Encoding (construction time reported separately) on the `encode` part.
- Replay: the encode_ordinary part once more, i.e. every chunk cached — what repeated text costs.
- Worst case: single 1 MB pieces without whitespace ("a" * 1e6, random letters, base64).
- Training: vocab 4,096 on ~10 MB of English (ours only; tiktoken does not train).
Timings are CPU seconds of this one process (`time.process_time`), ours and tiktoken's interleaved per
document: on a shared machine absolute numbers are still noisy; the ratios measured in the same run are
what count.
"""

from __future__ import annotations

import argparse
import base64
import platform
import random
import string
import sys
import time
import zlib
from pathlib import Path

from bench._oracle import rank_file_bytes, tiktoken_encoding
from tokend.engine import OPENAI_ENCODINGS, Encoding, load_tiktoken_ranks, train

KINDS = ("english", "code", "multilingual")
ENCODINGS = ("cl100k_base", "o200k_base")
OPERATIONS = ("encode", "encode_ordinary", "count")


def _texts(kind: str, limit_bytes: int) -> tuple[list[str], list[list[str]]]:
    from tests.corpus import corpus_texts

    documents = [doc for doc in corpus_texts(limit_bytes=limit_bytes, kinds=(kind,)) if "<|" not in doc]
    warm, measure = [], []
    for document in documents:
        (measure if zlib.crc32(document.encode("utf-8", "replace")) % 4 == 0 else warm).append(document)
    return warm, [measure[i::3] for i in range(3)]


def _mb(texts: list[str]) -> float:
    return sum(len(text.encode("utf-8")) for text in texts) / 1e6


def _rate(function, texts: list[str]) -> float:
    started = _clock()
    for text in texts:
        function(text)
    return _mb(texts) / (_clock() - started)


def _rates(mine, theirs, texts: list[str]) -> tuple[float, float]:
    """MB/s of both, interleaved document by document so load changes on the shared machine hit both."""
    mine_seconds = theirs_seconds = 0.0
    for text in texts:
        started = _clock()
        theirs(text)
        middle = _clock()
        mine(text)
        mine_seconds += _clock() - middle
        theirs_seconds += middle - started
    return _mb(texts) / mine_seconds, _mb(texts) / theirs_seconds


# CPU time of this process: time spent descheduled by other load does not count against either side.
_clock = time.process_time


def _ours(name: str, ranks: dict[bytes, int]) -> Encoding:
    return OPENAI_ENCODINGS[name].build(ranks)


def run(quick: bool) -> list[str]:
    limit = 1_200_000 if quick else 4_000_000
    lines = ["## Steady state (MB/s, text different from the warm-up)", ""]
    lines.append("| encoding | text | operation | tokend | tiktoken | ratio |")
    lines.append("|---|---|---|---:|---:|---:|")
    replay_lines = [
        "## Replay (text encoded once before: the cache's ceiling, NOT the steady-state measure above)",
        "",
        "| encoding | text | tokend encode_ordinary | tiktoken | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    cold_lines = ["## Cold (fresh Encoding, MB/s)", "", "| encoding | text | construct s | tokend encode | tiktoken encode | ratio |", "|---|---|---:|---:|---:|---:|"]
    corpora = {kind: _texts(kind, limit) for kind in KINDS}
    for name in ENCODINGS:
        ranks = load_tiktoken_ranks(rank_file_bytes(name), expected_sha256=OPENAI_ENCODINGS[name].rank_file_sha256)
        oracle = tiktoken_encoding(name)
        for kind in KINDS:
            warm, parts = corpora[kind]
            started = time.perf_counter()
            fresh = _ours(name, ranks)
            construct = time.perf_counter() - started
            cold, theirs_cold = _rates(fresh.encode, oracle.encode, parts[0])
            cold_lines.append(f"| {name} | {kind} | {construct:.2f} | {cold:.2f} | {theirs_cold:.2f} | {cold / theirs_cold:.2f} |")
            ours = _ours(name, ranks)
            for text in warm:
                ours.encode_ordinary(text)
            functions = {
                "encode": (ours.encode, oracle.encode),
                "encode_ordinary": (ours.encode_ordinary, oracle.encode_ordinary),
                "count": (ours.count, lambda text: len(oracle.encode(text))),
            }
            for operation, part in zip(OPERATIONS, parts):
                mine, theirs = functions[operation]
                mine_rate, theirs_rate = _rates(mine, theirs, part)
                lines.append(
                    f"| {name} | {kind} ({_mb(part):.2f} MB) | {operation} | {mine_rate:.2f} | {theirs_rate:.2f} | {mine_rate / theirs_rate:.2f} |"
                )
                sys.stderr.write(lines[-1] + "\n")
            replay, theirs_replay = _rates(ours.encode_ordinary, oracle.encode_ordinary, parts[1])
            replay_lines.append(f"| {name} | {kind} | {replay:.2f} | {theirs_replay:.2f} | {replay / theirs_replay:.2f} |")
            stats = ours.piece_cache_stats()
            sys.stderr.write(f"  cache after {name}/{kind}: {stats}\n")
    lines += [""] + cold_lines + [""] + replay_lines + [""]
    lines += _worst_case(quick) + [""] + _training(quick)
    from bench import sentencepiece

    lines += [""] + sentencepiece.run(quick, command=f"python -m bench engine{' --quick' if quick else ''}")
    return lines


def _worst_case(quick: bool) -> list[str]:
    size = 200_000 if quick else 1_000_000
    rng = random.Random(1)
    pieces = {
        '"a" * n': "a" * size,
        "random letters": "".join(rng.choices(string.ascii_letters, k=size)),
        "base64": base64.b64encode(rng.randbytes(size * 3 // 4)).decode()[:size],
    }
    ranks = load_tiktoken_ranks(rank_file_bytes("cl100k_base"))
    ours = _ours("cl100k_base", ranks)
    oracle = tiktoken_encoding("cl100k_base")
    lines = [f"## Worst case: one {size / 1e6:g} MB piece without whitespace (cl100k_base, seconds)", ""]
    lines += ["| input | tokend s | tiktoken s |", "|---|---:|---:|"]
    for label, text in pieces.items():
        started = _clock()
        ours.encode_ordinary(text)
        mine = _clock() - started
        started = _clock()
        oracle.encode_ordinary(text)
        theirs = _clock() - started
        lines.append(f"| {label} | {mine:.2f} | {theirs:.2f} |")
        sys.stderr.write(lines[-1] + "\n")
    return lines


def _training(quick: bool) -> list[str]:
    from tests.corpus import corpus_texts

    size = 1_000_000 if quick else 10_000_000
    texts = corpus_texts(limit_bytes=size, kinds=("english",))
    started = _clock()
    result = train(texts, 4096)
    elapsed = _clock() - started
    line = f"Training: vocab 4,096 ({len(result.merges)} merges, GPT-4 pattern) on {_mb(texts):.1f} MB of English: **{elapsed:.1f} s**"
    sys.stderr.write(line + "\n")
    return ["## Training", "", line]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller texts and training set")
    parser.add_argument("--out", default="docs/bench-engine.md", help="markdown report path ('' = do not write)")
    args = parser.parse_args(argv)
    header = [
        "# Engine benchmark",
        "",
        f"`python -m bench engine{' --quick' if args.quick else ''}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"Python {platform.python_version()}, {platform.machine()}. One core, CPU time, ours and tiktoken "
        "interleaved per document; the machine is shared, so compare ratios (same run), not absolute MB/s.",
        "",
    ]
    report = "\n".join(header + run(args.quick)) + "\n"
    sys.stdout.write(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report, encoding="utf-8")
    return 0
