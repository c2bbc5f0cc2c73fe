r"""Worst case per family: one huge piece (or SentencePiece segment) for every model family the engine supports,
tokend beside the family's reference library, CPU seconds per MB.

    python -m bench family-worst                        # 1 MB pieces, 3 runs; rewrites docs/bench-engine.md's section
    python -m bench family-worst --size 262144 --runs 1 --out ''
    python -m bench family-worst --base-dir /tmp/main   # tokend of another tree beside this one's, in turns

Families and references (files from packages, as the tests build them: tests/support/tokenizer_json.py,
tests/engine/sentencepiece/models.py): Llama 3, Qwen 3, a DeepSeek-V3-style split and GPT-2 as tokenizer.json
(`tokenizers`), Tekken 240718 (`mistral-common`), Mistral v1 and v3 `.model` and a Llama-2-like SentencePiece BPE
(`sentencepiece`), two Unigram models (`sentencepiece`); cl100k_base and o200k_base beside them (tiktoken).
Inputs (bench/worst_case.py's four and six more): a repeated letter, random letters, random lowercase letters,
a run of spaces, a run of newlines, a repeated emoji, a repeated U+1D160 (three characters under NFC), each one
piece; and text of many pieces or segments, each merged on its own: random lowercase words of 300 letters and of
4,000 (the byte-level medium merge's pieces, its longest: 129 bytes to 4 KiB took the heap, docs/decisions.md
"Every family's worst case", then "Pieces of 129 bytes to 4 KiB"), and words of 1,000 frequent letters
("etaoinshr", any two of which may join: one SentencePiece segment a word, SentencePiece BPE's worst shape).

Each (side, model) runs in a fresh process that loads the model once and times every input `runs` times in
rounds (CPU seconds of the call; huge pieces are not cached, so every run merges again); a cell is the median.
A reference runs each input in a process of its own under `--timeout` (tiktoken's merge, which mistral-common
and tiktoken run, is quadratic in a piece's length: "> 20 s"). The ids of both sides are compared through a
digest; a cell whose ids differ is marked. With `--base-dir`, the other tree's tokend runs as a third side, its
processes taking turns with this tree's (old, new, old, new ...), so both see the same moments of the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import string
import subprocess
import sys
import time
from array import array
from pathlib import Path

from bench.report_sections import write_section

__all__ = ["INPUTS", "MODELS", "main", "piece_text"]

_REPO = Path(__file__).resolve().parent.parent
INPUTS = ("repeated letter", "random letters", "random lowercase", "spaces", "newlines", "repeated emoji", "U+1D160",
          "300-letter words", "4000-letter words", "frequent-letter words")
MODELS = ("cl100k_base", "o200k_base", "llama3", "qwen3", "deepseek-v3-style", "gpt2", "tekken", "mistral_v1",
          "mistral_v3", "llama2_like", "botchan_unigram", "kyoto_unigram")
_REFERENCE = {"cl100k_base": "tiktoken", "o200k_base": "tiktoken", "llama3": "tokenizers", "qwen3": "tokenizers",
              "deepseek-v3-style": "tokenizers", "gpt2": "tokenizers", "tekken": "mistral-common"}


def piece_text(kind: str, size: int) -> str:
    """About `size` UTF-8 bytes: one piece under every family's split, but the words."""
    rng = random.Random(1)

    def words(letters: str, length: int) -> str:
        return " ".join("".join(rng.choices(letters, k=length)) for _ in range(max(1, size // (length + 1))))

    texts = {
        "repeated letter": lambda: "a" * size,
        "random letters": lambda: "".join(rng.choices(string.ascii_letters, k=size)),
        "random lowercase": lambda: "".join(rng.choices(string.ascii_lowercase, k=size)),
        "spaces": lambda: " " * size,
        "newlines": lambda: "\n" * size,
        "repeated emoji": lambda: "\N{GRINNING FACE}" * (size // 4),
        "U+1D160": lambda: "\U0001D160" * (size // 4),
        "300-letter words": lambda: words(string.ascii_lowercase, 300),
        "4000-letter words": lambda: words(string.ascii_lowercase, 4_000),
        "frequent-letter words": lambda: words("etaoinshr", 1_000),
    }
    return texts[kind]()


def _load(model: str, side: str):
    """text -> ids, for tokend (side "tokend") or the model's reference library."""
    sys.path[:0] = [str(_REPO), str(_REPO / "tests")]
    import tests.conftest  # noqa: F401  (tiktoken offline)

    if model in ("cl100k_base", "o200k_base"):
        if side == "tokend":
            import tokend

            return tokend.get_encoding(model).encode_ordinary
        import tiktoken

        return tiktoken.get_encoding(model).encode_ordinary
    if model in ("llama3", "qwen3", "deepseek-v3-style", "gpt2"):
        from support import tokenizer_json as files

        build = {"llama3": files.llama3_tokenizer_json, "qwen3": files.qwen3_tokenizer_json,
                 "deepseek-v3-style": files.deepseek_v3_style_tokenizer_json, "gpt2": files.gpt2_tokenizer_json}[model]
        if side == "tokend":
            from tokend.engine import Encoding, parse_tokenizer_json

            return Encoding.from_model(parse_tokenizer_json(build(), name=model).model).encode_ordinary
        import tokenizers

        oracle = tokenizers.Tokenizer.from_str(json.dumps(build()))
        return lambda text: oracle.encode(text, add_special_tokens=False).ids
    if model == "tekken":
        import mistral_common

        path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
        if side == "tokend":
            from tokend.engine import Encoding, read_tekken_json

            return Encoding.from_model(read_tekken_json(path.read_bytes(), name="tekken").model).encode_ordinary
        from mistral_common.tokens.tokenizers.tekken import Tekkenizer

        tekken = Tekkenizer.from_file(path)
        return lambda text: tekken.encode(text, bos=False, eos=False)
    from tests.engine.sentencepiece.models import oracle, ours

    return ours(model).encode_ordinary if side == "tokend" else oracle(model).encode


def _child(tree: str, model: str, side: str, kinds: list[str], size: int, runs: int) -> None:
    """One process: `model` on `side`, each of `kinds` timed `runs` times in rounds; prints one JSON line."""
    sys.path.insert(0, str(Path(tree) / "service" / "src"))
    encode = _load(model, side)
    if side == "tokend":
        import tokend

        if not Path(tokend.__file__).resolve().is_relative_to(Path(tree).resolve()):
            raise SystemExit(f"{tree} has no tokend to import (got {tokend.__file__})")
    texts = {kind: piece_text(kind, size) for kind in kinds}
    encode("warm up " * 4)
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    digests = {}
    for _ in range(runs):
        for kind in kinds:
            started = time.process_time()
            ids = encode(texts[kind])
            seconds[kind].append(time.process_time() - started)
            digests[kind] = (hashlib.sha256(array("I", ids).tobytes()).hexdigest()[:16], len(ids))
    sys.stdout.write(json.dumps({kind: [statistics.median(seconds[kind]), *digests[kind]] for kind in kinds}) + "\n")
    sys.stdout.flush()
    os._exit(0)  # skip the teardown of huge objects


def _run_child(tree: Path, model: str, side: str, kinds: list[str], size: int, runs: int, timeout: float) -> dict:
    command = [sys.executable, "-m", "bench.family_worst", "--child", str(tree), model, side, ",".join(kinds), str(size), str(runs)]
    try:
        done = subprocess.run(command, cwd=_REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {kind: f"> {timeout:g} s" for kind in kinds}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["?"])[-1][:120]
        return {kind: f"failed ({last})" for kind in kinds}
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(models: list[str], size: int, runs: int, timeout: float, base: Path | None, reference: bool) -> list[str]:
    megabytes = size / 1e6
    sides = [("tokend", _REPO)] + ([("tokend (base)", base)] if base else [])
    header = "| model | reference | input | " + " | ".join(f"{name} s/MB" for name, _ in sides)
    header += " | reference s/MB |" + (" base ÷ this |" if base else "")
    lines = [header, "|---|---|---|" + "---:|" * (len(sides) + 1 + (1 if base else 0))]
    for index, model in enumerate(models):
        reference_name = _REFERENCE.get(model, "sentencepiece")
        results = {}
        order = sides if index % 2 else sides[::-1]  # who goes first changes from model to model
        for name, tree in order:
            results[name] = _run_child(tree, model, "tokend", list(INPUTS), size, runs, timeout * len(INPUTS) * runs)
        theirs = {}
        for kind in INPUTS:
            theirs[kind] = _run_child(_REPO, model, "reference", [kind], size, 1, timeout)[kind] if reference else "—"
        for kind in INPUTS:
            cells = []
            for name, _ in sides:
                value = results[name][kind]
                if isinstance(value, str):
                    cells.append(value)
                    continue
                mark = ""
                if isinstance(theirs[kind], list) and theirs[kind][1:] != value[1:]:
                    mark = " (NOT exact)"
                cells.append(f"{value[0] / megabytes:.3f}{mark}")
            reference_cell = f"{theirs[kind][0] / megabytes:.3f}" if isinstance(theirs[kind], list) else theirs[kind]
            row = f"| {model} | {reference_name} | {kind} | " + " | ".join(cells) + f" | {reference_cell} |"
            if base:
                new, old = results["tokend"][kind], results["tokend (base)"][kind]
                row += f" {old[0] / new[0]:.1f}x |" if isinstance(new, list) and isinstance(old, list) and new[0] > 0 else " — |"
            lines.append(row)
            sys.stderr.write(row + "\n")
    return lines


def _describe(tree: str) -> str:
    """`tree` as its commit, when it is a git checkout."""
    done = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%h"], capture_output=True, text=True)
    return f"at {done.stdout.strip()}" if done.returncode == 0 else tree


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        tree, model, side, kinds, size, runs = argv[1:7]
        _child(tree, model, side, kinds.split(","), int(size), int(runs))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench family-worst", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000, help="bytes a piece (default 1 MB)")
    parser.add_argument("--runs", type=int, default=3, help="runs a cell; the median is shown (default 3)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a reference's input may take")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ", ".join(MODELS))
    parser.add_argument("--base-dir", default=None, help="another tree (native core built in place) timed beside this one")
    parser.add_argument("--no-reference", action="store_true", help="tokend only")
    parser.add_argument("--out", default="docs/bench-engine.md", help="report whose family-worst section is rewritten ('' = none)")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    lines = run(args.models.split(","), args.size, args.runs, args.timeout, Path(args.base_dir) if args.base_dir else None,
                not args.no_reference)
    section = "\n".join([
        "<!-- family-worst -->",
        "## Worst case per family (`python -m bench family-worst`)",
        "",
        f"`python -m bench family-worst --size {args.size} --runs {args.runs}` — {started}, load {load:.1f} at the start. "
        "One huge piece per model family (bench/family_worst.py): CPU seconds of one call per MB, median of the runs, "
        f"tokend beside the family's reference library (one run; \"> {args.timeout:g} s\": stopped)."
        + (f" \"tokend (base)\": the tree {_describe(args.base_dir)}, its processes taking turns with this tree's; "
           "\"base ÷ this\" > 1 where this tree is faster." if args.base_dir else ""),
        "",
        *lines,
        "<!-- /family-worst -->",
    ])
    sys.stdout.write(section + "\n")
    if args.out:
        write_section(args.out, "family-worst", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
