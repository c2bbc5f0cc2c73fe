"""Byte-level BPE families benchmark: each model beside its reference library in the same run, and beside
tokend's own cl100k_base on the same text.

    python -m bench families            # full run, rewrites the families section of docs/bench-engine.md
    python -m bench families --quick    # smaller texts
    python -m bench families --models llama3,qwen3 --kinds multilingual   # some cells (no report written)

Models and references: OpenAI's gpt2, r50k_base, p50k_base, p50k_edit, o200k_harmony (tiktoken); Llama 3,
Qwen 3 and a DeepSeek-V3-style pre-tokenizer as tokenizer.json files built the way tests build them
(Hugging Face `tokenizers`, one text at a time: `Tokenizer.encode`); Mistral NeMo's Tekken (mistral-common,
which runs tiktoken underneath). Text and method as `bench engine` (bench/corpora.py, bench/throughput.py):
corpus documents split into a warm-up set and disjoint encode/count parts, every side warmed up on the
warm-up set, ours, the reference and cl100k_base taking turns block by block (in the warm-up too; who goes first
changes from round to round), CPU time of this process. Targets (issue 14): every model's MB/s within 1.5x of cl100k_base's
on the same text (ratio >= 0.67) and >= 3x `tokenizers` on the same tokenizer.json.

Rounds (`--rounds N`, default 3): each round measures every cell again with new tokend encodings (empty
piece caches: the text stays unseen) and prints the median over rounds of each MB/s and of each ratio
within a round. One pass per cell moved single ratios by about +-0.08 between runs on a quiet machine,
enough to flip a cell across a target; the median of three halves that.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import tests.conftest  # noqa: F401  (tiktoken offline: every OpenAI encoding's files from their packages)
from bench.corpora import KINDS, measurement_corpora
from bench.exactness import check_exact
from bench.peers import Peer
from bench.report_sections import write_section
from bench.throughput import measure_cell, megabytes



MODELS = ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "o200k_harmony", "llama3", "qwen3", "deepseek-v3-style",
          "tekken (NeMo)")


def _models(selected=MODELS):
    """`selected` names -> (ours: () -> a new tokend Encoding, reference encode: text -> ids, reference name, ours' encode
    arguments, () -> a new fastokens Peer on the same file, or None where fastokens reads no such file)."""
    import mistral_common
    import tiktoken
    import tokenizers
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    import tokend
    from support import tokenizer_json as files
    from tokend.engine import Encoding, parse_tokenizer_json, read_tekken_json

    models = {}
    for name in (name for name in ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "o200k_harmony") if name in selected):
        oracle = tiktoken.get_encoding(name)
        # fastokens reads tiktoken files for cl100k_base and o200k_base only (its presets): the engine
        # benchmark has those
        models[name] = (lambda name=name: _fresh(tokend.get_encoding(name)), oracle.encode, "tiktoken", {}, None)
    for name, build in (("llama3", files.llama3_tokenizer_json), ("qwen3", files.qwen3_tokenizer_json),
                        ("deepseek-v3-style", files.deepseek_v3_style_tokenizer_json)):
        if name not in selected:
            continue
        document = build()
        oracle = tokenizers.Tokenizer.from_str(json.dumps(document))
        model = parse_tokenizer_json(document, name=name).model
        models[name] = (lambda model=model: Encoding.from_model(model), lambda text, oracle=oracle: oracle.encode(text, add_special_tokens=False).ids, "tokenizers", {},
                        lambda document=document: _fastokens(json.dumps(document)))
    if "tekken (NeMo)" not in selected:
        return models
    tekken_file = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
    tekken = Tekkenizer.from_file(tekken_file)
    model = read_tekken_json(tekken_file.read_bytes(), name="tekken").model
    # mistral-common reads special-token text ("[INST]", "<s>", which code contains) as text: so does this call
    models["tekken (NeMo)"] = (lambda model=model: Encoding.from_model(model), lambda text: tekken.encode(text, bos=False, eos=False), "mistral-common",
                               {"disallowed_special": ()}, None)
    return models


def _fastokens(document: str) -> Peer:
    """fastokens on a tokenizer.json's text, called as bench/family_peers.py calls it."""
    import fastokens

    from bench.family_peers import fastokens_peer

    return fastokens_peer(fastokens.Tokenizer.from_json_str(document))


def _fresh(encoding):
    """A new Encoding with `encoding`'s data: its piece cache holds no text measured before."""
    import tokend

    return tokend.Encoding(encoding.name, pat_str=encoding.pattern, mergeable_ranks=encoding._mergeable_ranks,
                           special_tokens=dict(encoding.special_tokens))


def run(quick: bool, rounds: int = 3, models=MODELS, kinds=KINDS) -> list[str]:
    import tokend

    limit = 600_000 if quick else 2_000_000
    corpora = measurement_corpora(limit, kinds=kinds)
    cl100k = tokend.get_encoding("cl100k_base")
    lines = [
        "<!-- families -->",
        "## Byte-level families (`python -m bench families`)",
        "",
        "Each model beside its reference library (same run, taking turns block by block) and beside tokend's "
        "cl100k_base on the same text (target: >= 0.67, i.e. within 1.5x; vs `tokenizers`: >= 3x). \"split\": "
        "who cut the text into pieces in this run — the native core (a hand-written scanner or the compiled "
        "matcher, chains of them for a Sequence of Splits) or Python's `regex` module (patterns the compiler "
        "refuses), which then takes most of the time. MB/s and ratios: medians over "
        f"{rounds} round{'s' if rounds > 1 else ''}, each ratio taken within a round (new encodings each round).",
        "",
        "Beside fastokens too where it reads the same file (the tokenizer.json models; the engine benchmark has "
        "cl100k_base and o200k_base): checked exact against the reference on every text of the cell first, and "
        "taking turns with the others (issue 18's targets hold for the open-model families too: encode >= 1.0x, "
        "count >= 1.2x).",
        "",
        "| model | split | text | op | tokend MB/s | reference | reference MB/s | ratio | tokend cl100k MB/s | vs cl100k "
        "| fastokens MB/s | vs fastokens |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]

    def fresh_cl100k() -> Peer:
        # a new Encoding per cell: its piece cache must not hold text measured in an earlier cell
        base = _fresh(cl100k)
        return Peer("cl100k", tokend.__version__, base.encode, base.count, "encode / count")

    for name, (make_ours, reference, reference_name, policy, make_fast) in _models(models).items():
        theirs = Peer(reference_name, "", reference, lambda text, reference=reference: len(reference(text)), "encode")
        split = "native" if make_ours()._native_splitter is not None else "regex module"
        for kind in kinds:
            warm, parts = corpora[kind]
            fast_verdict = None  # fastokens: timed only where exact on every text of the cell
            if make_fast is not None:
                probe = make_fast()
                fast_verdict = check_exact(probe.encode, probe.count, reference, [*warm, *parts["encode"], *parts["count"]])
                if not fast_verdict.exact:
                    sys.stderr.write(f"fastokens on {name} {kind}: {fast_verdict.summary()}\n")
            per_round = []  # per round: (peer key, operation) -> MB/s
            for round_index in range(rounds):
                # both sides warmed through the calls measured (lazy regexes, caches): measure_cell encodes
                # the warm-up set with each
                ours = make_ours()
                mine = Peer("tokend", tokend.__version__, lambda text, ours=ours, policy=policy: ours.encode(text, **policy),
                            lambda text, ours=ours, policy=policy: ours.count(text, **policy), "encode / count")
                peers = [mine, theirs, fresh_cl100k()] + ([make_fast()] if fast_verdict and fast_verdict.exact else [])
                turn = round_index % len(peers)  # who goes first changes from round to round
                per_round.append(measure_cell(peers[turn:] + peers[:turn], warm, parts))
            for operation in ("encode", "count"):
                def median(key, per_round=per_round, operation=operation):
                    return statistics.median(rates[(key, operation)] for rates in per_round)

                def median_ratio(key, per_round=per_round, operation=operation):
                    return statistics.median(rates[("tokend", operation)] / rates[(key, operation)] for rates in per_round)

                if fast_verdict is None:
                    fast = "— | —"
                elif not fast_verdict.exact:
                    fast = f"{fast_verdict.short()} | —"
                else:
                    fast = f"{median('fastokens'):.2f} | {median_ratio('fastokens'):.2f}"
                lines.append(
                    f"| {name} | {split} | {kind} ({megabytes(parts[operation]):.2f} MB) | {operation} | "
                    f"{median('tokend'):.2f} | {reference_name} | {median(reference_name):.2f} | "
                    f"{median_ratio(reference_name):.2f} | {median('cl100k'):.2f} | {median_ratio('cl100k'):.2f} | {fast} |"
                )
                sys.stderr.write(lines[-1] + "\n")
    lines.append("<!-- /families -->")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench families", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller texts")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell; medians are reported (default 3)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated models (default: all)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds of text (default: all)")
    parser.add_argument("--out", default=None,
                        help="report whose families section is rewritten ('' = none; default docs/bench-engine.md, "
                             "none when --models or --kinds leaves cells out)")
    args = parser.parse_args(argv)
    models, kinds = tuple(args.models.split(",")), tuple(args.kinds.split(","))
    unknown = sorted(set(models) - set(MODELS)) + sorted(set(kinds) - set(KINDS))
    if unknown:
        parser.error(f"unknown models or kinds {unknown}; models: {', '.join(MODELS)}; kinds: {', '.join(KINDS)}")
    whole = set(models) == set(MODELS) and set(kinds) == set(KINDS)
    out = args.out if args.out is not None else ("docs/bench-engine.md" if whole else "")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = run(args.quick, args.rounds, models, kinds)
    filters = "" if whole else f" --models {args.models} --kinds {args.kinds}"
    lines.insert(2, f"\n`python -m bench families{' --quick' if args.quick else ''} --rounds {args.rounds}{filters}` — {started}.")
    section = "\n".join(lines)
    sys.stdout.write(section + "\n")
    if out:
        write_section(out, "families", section)
    return 0
