"""Budget operations benchmark: offsets, truncate, chunk and streaming decode beside plain encode, same run.

    python -m bench budgets            # full run, writes docs/bench-budgets.md
    python -m bench budgets --quick    # smaller texts (a smoke run)

Method:
- Text: tests/corpus.py per kind (english, code, multilingual), its 8,000-character slices joined by blank
  lines into one document per kind (~2 MB; multilingual is what the machine has, ~1.6 MB).
- Each operation runs on a freshly built Encoding (cold piece cache, construction not timed), three times;
  the best CPU time (`time.process_time`) counts. The per-encoding surface table (offsets.surface_table,
  built once per Encoding object on first use) is built before timing and reported on its own. Ratio = the operation's MB/s over plain `encode`'s MB/s on
  the same text in the same run: what the operation costs on top of encoding.
- Peer: tiktoken's way to offsets, `encode` + `decode_with_offsets` (Python), on the same text.
- Headline: chunk a 10 MB English document (distinct text, no repetition) into 512-token chunks, cold.
- Streaming decode: ids fed one at a time through `decoder()` against one `decode` of them all.
Timings on this shared 2-core machine move by ±20 % between runs; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from bench._oracle import rank_file_bytes, tiktoken_encoding
from tokend.engine import OPENAI_ENCODINGS, Encoding, load_tiktoken_ranks
from tokend.engine.offsets import surface_table

KINDS = ("english", "code", "multilingual")
ENCODINGS = ("cl100k_base", "o200k_base")
REPEATS = 3
_clock = time.process_time


def _document(kind: str, limit_bytes: int) -> str:
    from tests.corpus import corpus_texts

    return "\n\n".join(doc for doc in corpus_texts(limit_bytes=limit_bytes, kinds=(kind,)) if "<|" not in doc)


def _best_seconds(build, operation) -> float:
    """Best CPU seconds of `operation(fresh encoding)` over REPEATS fresh encodings."""
    best = float("inf")
    for _ in range(REPEATS):
        encoding = build()
        started = _clock()
        operation(encoding)
        best = min(best, _clock() - started)
    return best


def _builder(name: str):
    """A function building a fresh Encoding `name` with its surface table in place (neither is timed)."""
    spec = OPENAI_ENCODINGS[name]
    ranks = load_tiktoken_ranks(rank_file_bytes(name), expected_sha256=spec.rank_file_sha256)

    def build() -> Encoding:
        encoding = spec.build(ranks)
        surface_table(encoding)
        return encoding

    return build


def _operations(tokens: int) -> dict:
    half = max(tokens // 2, 1)
    return {
        "encode": lambda enc, text: enc.encode(text),
        "encode_with_offsets": lambda enc, text: enc.encode_with_offsets(text),
        f"truncate right to {half:,}": lambda enc, text: enc.truncate(text, half),
        f"truncate left to {half:,}": lambda enc, text: enc.truncate(text, half, side="left"),
        "chunk 512, paragraph": lambda enc, text: enc.chunk(text, 512),
        "chunk 512, token": lambda enc, text: enc.chunk(text, 512, prefer="token"),
        "chunk 512, overlap 64, sentence": lambda enc, text: enc.chunk(text, 512, 64, "sentence"),
        "chunk 8192, paragraph": lambda enc, text: enc.chunk(text, 8192),
    }


def run(quick: bool) -> list[str]:
    limit = 400_000 if quick else 2_000_000
    documents = {kind: _document(kind, limit) for kind in KINDS}
    lines = ["## Operations on one document (MB/s of input, cold piece cache, best of 3)", ""]
    lines += ["| encoding | text | operation | MB/s | ÷ encode |", "|---|---|---|---:|---:|"]
    stream_lines = ["## Streaming decode (ids fed one at a time vs one `decode`)", ""]
    stream_lines += ["| encoding | text | tokens | decode s | stream s | ÷ decode |", "|---|---|---:|---:|---:|---:|"]
    table_lines = ["## One-time cost per Encoding object: the surface table (CPU s)", ""]
    table_lines += ["| encoding | ids | build s |", "|---|---:|---:|"]
    for name in ENCODINGS:
        build = _builder(name)
        oracle = tiktoken_encoding(name)
        fresh = OPENAI_ENCODINGS[name].build(dict(build().mergeable_ranks))
        started = _clock()
        table = surface_table(fresh)
        table_lines.append(f"| {name} | {len(table):,} | {_clock() - started:.3f} |")
        for kind, text in documents.items():
            megabytes = len(text.encode("utf-8")) / 1e6
            ids = build().encode(text)
            rates = {}
            for label, operation in _operations(len(ids)).items():
                seconds = _best_seconds(build, lambda enc: operation(enc, text))
                rates[label] = megabytes / seconds
                lines.append(f"| {name} | {kind} ({megabytes:.1f} MB) | {label} | {rates[label]:.1f} | {rates[label] / rates['encode']:.2f} |")
                sys.stderr.write(lines[-1] + "\n")
            seconds = _best_seconds(lambda: oracle, lambda enc: enc.decode_with_offsets(enc.encode(text)))
            lines.append(f"| {name} | {kind} | peer: tiktoken encode + decode_with_offsets | {megabytes / seconds:.1f} | {megabytes / seconds / rates['encode']:.2f} |")
            sys.stderr.write(lines[-1] + "\n")
            stream_lines.append(_stream_line(build(), name, kind, ids))
    lines += [""] + stream_lines + [""] + table_lines + [""] + _headline(quick)
    return lines


def _stream_line(encoding: Encoding, name: str, kind: str, ids: list[int]) -> str:
    started = _clock()
    whole = encoding.decode(ids)
    decode_seconds = _clock() - started
    decoder = encoding.decoder()
    started = _clock()
    streamed = "".join(decoder.feed(token) for token in ids) + decoder.flush()
    stream_seconds = _clock() - started
    assert streamed == whole
    line = f"| {name} | {kind} | {len(ids):,} | {decode_seconds:.3f} | {stream_seconds:.3f} | {stream_seconds / decode_seconds:.0f}× |"
    sys.stderr.write(line + "\n")
    return line


def _headline(quick: bool) -> list[str]:
    size = 2_000_000 if quick else 10_000_000
    text = _document("english", size)[:size]
    megabytes = len(text.encode("utf-8")) / 1e6
    lines = [f"## Headline: one {megabytes:.1f} MB English document (distinct text), cold, best of {REPEATS} (CPU s)", ""]
    lines += ["| encoding | encode s | encode_with_offsets s | chunk 512 s | chunks | chunk ÷ encode |", "|---|---:|---:|---:|---:|---:|"]
    for name in ENCODINGS:
        build = _builder(name)
        encode = _best_seconds(build, lambda enc: enc.encode(text))
        offsets = _best_seconds(build, lambda enc: enc.encode_with_offsets(text))
        chunk = _best_seconds(build, lambda enc: enc.chunk(text, 512))
        count = len(build().chunk(text, 512))
        lines.append(f"| {name} | {encode:.2f} | {offsets:.2f} | **{chunk:.2f}** | {count:,} | {chunk / encode:.2f} |")
        sys.stderr.write(lines[-1] + "\n")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench budgets", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller texts")
    parser.add_argument("--out", default="docs/bench-budgets.md", help="markdown report path ('' = do not write)")
    args = parser.parse_args(argv)
    header = [
        "# Budget operations benchmark",
        "",
        f"`python -m bench budgets{' --quick' if args.quick else ''}` — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"Python {platform.python_version()}, {platform.machine()}. One core, CPU time; the machine is shared, so "
        "compare ratios (same run), not absolute MB/s. Method: bench/budgets.py.",
        "",
    ]
    report = "\n".join(header + run(args.quick)) + "\n"
    sys.stdout.write(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report, encoding="utf-8")
    return 0
