"""`python -m bench chain-percall` (bench/chain_percall.py) runs, for a call whose end is not watched and one whose
end is (the numbers are never asserted; the add_callback count per call is the interceptors' contract)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("answer_bytes", [0, 20_000])
def test_a_short_run_reports_the_chains_cost_and_one_callback_a_call(answer_bytes: int) -> None:
    command = [sys.executable, "-m", "bench", "chain-percall", "--calls", "500", "--rounds", "1",
               "--answer-bytes", str(answer_bytes)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "µs of thread CPU" in done.stdout and done.stdout.rstrip().endswith("1.00 add_callback a call"), done.stdout
