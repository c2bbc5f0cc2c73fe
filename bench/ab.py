"""A/B of the engine between two source trees: is this checkout faster than another build, per cell, on
the same unseen text?

    python -m bench ab --base HEAD~1                       # this checkout (B) against a revision (A)
    python -m bench ab --base-dir ../other --encodings cl100k_base --kinds english --runs 5
    python -m bench ab --base-dir .                        # A/A: the machine's noise at this moment
    python -m bench ab --base main --encodings llama3,qwen3 --kinds multilingual   # open families (FAMILIES)

Each side runs in a process of its own that imports its own tree's `tokend` (native core built in place).
The parent hands both sides the same documents one at a time, alternating which side goes first, and
each side times only its own call: both see the same moments of a shared, noisy machine, as the peers
of one `bench engine` round do. Every run starts fresh processes, so each measured document is unseen
by both (warm-up: the corpus's other part, as in `bench engine`). The result per cell (encoding, kind,
encode or count) is A's time ÷ B's time, > 1 when this checkout is faster.

Which side starts first alternates from run to run, and the result is the geometric mean of the two
halves (each half's median is shown beside it). On a 2-core VM the process started first ran English
`encode` 1.2-1.5x slower than the other in A/A runs, in every run and whichever tree it held, with both
pinned to one CPU too and after a second warm-up: a property of the process (where its memory landed, as
far as it could be told), not of the build. The bias then shows as a gap between the two halves, and
cancels in the mean. Run an A/A first when the machine is busy; a ratio inside the A/A halves is no
result.

`--base REV` checks REV out as a git worktree in a temporary directory and builds its native core there
(about a minute); `--base-dir` takes a tree whose native core is built. Exactness is not checked here:
the test suites hold every build to the reference libraries.

Why a tool: the deterministic alternative, callgrind, counts instructions faithfully but simulates
branch prediction without history, and twice pointed at savings the clock did not see
(docs/decisions.md, "The short merge without shifts").
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

REPO = Path(__file__).resolve().parent.parent
OPERATIONS = ("encode", "count")


def _serve(tree: str, encoding_name: str, limit_bytes: int, kinds: list[str]) -> int:
    """The side's process: answers "kind op index" lines with the seconds its call took."""
    sys.path.insert(0, str(Path(tree) / "service" / "src"))
    sys.path.insert(0, str(REPO))
    import tokend

    from bench.corpora import measurement_corpora

    if not Path(tokend.__file__).resolve().is_relative_to(Path(tree).resolve()):
        print(f"not ready: {tree} has no tokend to import (got {tokend.__file__})", flush=True)
        return 1
    corpora = measurement_corpora(limit_bytes, kinds=kinds)
    if encoding_name in FAMILIES:
        encoding = _family_encoding(encoding_name)
        # as `bench families` calls them: the default policy (Qwen 3's added-token scan included)
        calls = {"encode": encoding.encode, "count": encoding.count}
    else:
        encoding = tokend.get_encoding(encoding_name)
        calls = {"encode": encoding.encode_ordinary, "count": lambda text: encoding.count(text, disallowed_special=())}
    for kind in kinds:
        for text in corpora[kind][0]:
            encoding.encode_ordinary(text)
    print(f"ready {tokend.__file__}", flush=True)
    for line in sys.stdin:
        kind, operation, index = line.split()
        text = corpora[kind][1][operation][int(index)]
        start = time.perf_counter()
        calls[operation](text)
        print(time.perf_counter() - start, flush=True)
    return 0


# Open-model families (`--encodings llama3,qwen3`): the tokenizer.json files `bench families` and the tests build.
FAMILIES = ("llama3", "qwen3", "deepseek-v3-style")


def _family_encoding(name: str):
    sys.path.insert(0, str(REPO / "tests"))
    from support import tokenizer_json as files
    from tokend.engine import Encoding, parse_tokenizer_json

    build = {"llama3": files.llama3_tokenizer_json, "qwen3": files.qwen3_tokenizer_json,
             "deepseek-v3-style": files.deepseek_v3_style_tokenizer_json}[name]
    return Encoding.from_model(parse_tokenizer_json(build(), name=name).model)


class _Side:
    def __init__(self, tree: Path, encoding_name: str, limit_bytes: int, kinds: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.ab", "--serve", str(tree), encoding_name, str(limit_bytes), ",".join(kinds)],
            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = self.process.stdout.readline()
        if not ready.startswith("ready "):
            raise SystemExit(f"the side for {tree} did not start (exit {self.process.wait()}): {ready.strip()}")
        self.module = ready.split(" ", 1)[1].strip()

    def time(self, kind: str, operation: str, index: int) -> float:
        self.process.stdin.write(f"{kind} {operation} {index}\n")
        self.process.stdin.flush()
        return float(self.process.stdout.readline())

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _run(base: Path, encoding_name: str, limit_bytes: int, kinds: list[str], counts: dict, *, a_first: bool) -> dict[str, float]:
    """One run: fresh processes for A (base) and B (this checkout), the one of `a_first` started first; A's
    time ÷ B's per cell."""
    if a_first:
        a = _Side(base, encoding_name, limit_bytes, kinds)
        b = _Side(REPO, encoding_name, limit_bytes, kinds)
    else:
        b = _Side(REPO, encoding_name, limit_bytes, kinds)
        a = _Side(base, encoding_name, limit_bytes, kinds)
    if a.module == b.module:
        sys.stderr.write(f"A and B import the same tokend ({a.module}): an A/A run\n")  # --base-dir .
    ratios = {}
    try:
        for kind in kinds:
            for operation in OPERATIONS:
                total_a = total_b = 0.0
                for index in range(counts[kind][operation]):
                    if index % 2:
                        total_a += a.time(kind, operation, index)
                        total_b += b.time(kind, operation, index)
                    else:
                        total_b += b.time(kind, operation, index)
                        total_a += a.time(kind, operation, index)
                ratios[f"{encoding_name} {kind} {operation}"] = total_a / total_b
    finally:
        a.close()
        b.close()
    return ratios


def _worktree(revision: str, directory: Path) -> Path:
    tree = directory / "base"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--force", str(tree), revision], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tree / "service", check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    except subprocess.CalledProcessError:
        _remove_worktree(tree)
        raise SystemExit(f"the native core of {revision} did not build")
    return tree


def _remove_worktree(tree: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        tree, encoding_name, limit_bytes, kinds = argv[1:5]
        return _serve(tree, encoding_name, int(limit_bytes), kinds.split(","))
    parser = argparse.ArgumentParser(prog="python -m bench ab")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--base", help="git revision for A (checked out and built in a temporary worktree)")
    where.add_argument("--base-dir", type=Path, help="a built tree for A ('.' for an A/A run)")
    parser.add_argument("--encodings", default="cl100k_base,o200k_base")
    parser.add_argument("--kinds", default="english,code,multilingual")
    parser.add_argument("--runs", type=int, default=5, help="fresh process pairs per encoding (default 5)")
    parser.add_argument("--limit-bytes", type=int, default=4_000_000, help="corpus bytes per kind (as bench engine)")
    args = parser.parse_args(argv)
    kinds = args.kinds.split(",")
    sys.path.insert(0, str(REPO))
    from bench.corpora import measurement_corpora

    parts = measurement_corpora(args.limit_bytes, kinds=kinds)
    counts = {kind: {operation: len(parts[kind][1][operation]) for operation in OPERATIONS} for kind in kinds}
    with tempfile.TemporaryDirectory(prefix="tokend-ab-") as directory:
        base = args.base_dir.resolve() if args.base_dir else _worktree(args.base, Path(directory))
        if not list((base / "service" / "src" / "tokend" / "engine").glob("_native*.so")):
            parser.error(f"{base} is not a tokend checkout with its native core built "
                         "(cd service && python setup.py build_ext --inplace)")
        try:
            results: dict[str, list[float]] = {}
            for run in range(args.runs):
                for encoding_name in args.encodings.split(","):
                    ratios = _run(base, encoding_name, args.limit_bytes, kinds, counts, a_first=run % 2 == 0)
                    for cell, ratio in ratios.items():
                        results.setdefault(cell, []).append(ratio)
                print(f"run {run + 1}/{args.runs} done", file=sys.stderr)
        finally:
            if args.base:
                _remove_worktree(base)
    label = f"A = {args.base or args.base_dir}, B = this checkout ({REPO})"
    print(f"{label}; A time / B time (> 1: B faster), geometric mean of {args.runs} runs "
          "[A started first: median; B started first: median]")
    for cell, values in results.items():
        a_first, b_first = values[0::2], values[1::2]
        print(f"  {cell:<32} {_balanced_mean(values):.3f}  [{statistics.median(a_first):.3f}; "
              f"{statistics.median(b_first) if b_first else float('nan'):.3f}]")
    return 0


def _balanced_mean(values: list[float]) -> float:
    """The geometric mean of the runs with A started first and of those with B first, each pair weighted
    alike: a bias of the start order (f on one side, 1/f on the other) cancels."""
    a_first, b_first = values[0::2], values[1::2]
    if not b_first:
        return statistics.geometric_mean(a_first)
    return math.sqrt(statistics.geometric_mean(a_first) * statistics.geometric_mean(b_first))


if __name__ == "__main__":
    raise SystemExit(main())
