"""`python -m bench ab` (bench/ab.py) runs end to end: two side processes answer every document of every
cell, and the report names both trees and every cell. An A/A run on this checkout, tiny corpora; timings
are never asserted (each ratio only has to be a positive number)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_an_a_a_run_reports_every_cell_and_says_it_is_one() -> None:
    command = [sys.executable, "-m", "bench", "ab", "--base-dir", ".", "--runs", "2", "--encodings", "cl100k_base,o200k_base",
               "--kinds", "english,code", "--limit-bytes", "60000"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "an A/A run" in done.stderr
    cells = dict(re.findall(r"^  (\S+ \S+ \S+)\s+(\d+\.\d+)  \[\d+\.\d+; \d+\.\d+\]$", done.stdout, re.M))
    expected = {f"{enc} {kind} {op}" for enc in ("cl100k_base", "o200k_base") for kind in ("english", "code")
                for op in ("encode", "count")}  # fmt: skip
    assert set(cells) == expected, done.stdout
    assert all(float(ratio) > 0 for ratio in cells.values())
    assert "geometric mean of 2 runs" in done.stdout  # one run with A started first, one with B


def test_a_bias_of_the_start_order_cancels_in_the_reported_ratio() -> None:
    """Runs alternate which side starts first (A in even runs): a process started first that runs f times
    slower shows as f and 1/f around the true ratio, and the reported mean is the true ratio."""
    from bench.ab import _balanced_mean

    true, bias = 1.1, 1.5
    runs = [true * bias, true / bias] * 3
    assert abs(_balanced_mean(runs) - true) < 1e-9
    assert abs(_balanced_mean(runs + [true * bias]) - true) < 0.02  # an odd count weighs both halves alike
    assert _balanced_mean([1.2]) == 1.2


def test_a_base_that_is_no_built_checkout_is_refused_not_measured_as_this_one(tmp_path: Path) -> None:
    """Without the check, the side's import fell back to the installed tokend: a silent A/A run."""
    command = [sys.executable, "-m", "bench", "ab", "--base-dir", str(tmp_path), "--runs", "1",
               "--encodings", "cl100k_base", "--kinds", "english", "--limit-bytes", "60000"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"{tmp_path} is not a tokend checkout with its native core built" in done.stderr
    assert "mean of" not in done.stdout


def test_a_side_whose_import_reaches_another_tree_does_not_start(tmp_path: Path) -> None:
    """The side itself checks where its tokend came from (the installed one is not the tree's)."""
    command = [sys.executable, "-m", "bench.ab", "--serve", str(tmp_path), "cl100k_base", "60000", "english"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 1
    assert done.stdout.startswith("not ready: ")
