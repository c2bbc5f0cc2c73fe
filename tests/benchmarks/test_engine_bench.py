"""The engine benchmark's harness (bench/) runs end to end and refuses to time what is not exact.

Timings are never asserted (performance lives in docs/bench-engine.md): these tests check that a small
run completes, reports every peer it was given (an unknown one as unavailable, not as a crash), that the
exactness gate catches a wrong peer, and that the worst-case child checks its ids against tiktoken.
Only tokend and tiktoken are used here (both are in tests/requirements.txt); the other peers come from
bench/requirements.txt and are exercised by `python -m bench engine` itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.exactness import check_exact
from bench.worst_case import PIECES, measure_memory, measure_pieces

REPO = Path(__file__).resolve().parents[2]


def test_a_small_engine_run_reports_every_peer(tmp_path: Path) -> None:
    report = tmp_path / "bench-engine.md"
    command = [sys.executable, "-m", "bench", "engine", "--quick", "--rounds", "1", "--limit-bytes", "30000",
               "--peers", "tokend,tiktoken,no-such-peer", "--sections", "throughput,cold",
               "--out", str(report), "--chart", ""]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    text = report.read_text()
    assert "| no-such-peer | — | unavailable: unknown peer" in text
    tiktoken_row = next(line for line in text.splitlines() if line.startswith("| tiktoken ") and "encode(t)" in line)
    assert "yes (" in tiktoken_row  # checked exact before it was timed
    ratio_rows = [line for line in text.splitlines() if line.startswith("| ÷ tiktoken")]
    assert len(ratio_rows) == 2  # encode and count, one ratio per cell
    assert all(line.count("×") == 6 for line in ratio_rows)
    assert "## Cold start" in text and "| tokend " in text.split("## Cold start")[1]


def test_a_wrong_peer_is_caught_before_it_is_timed() -> None:
    def reference(text: str) -> list[int]:
        return [len(word) for word in text.split()]

    def off_by_one(text: str) -> list[int]:
        ids = reference(text)
        return ids[:-1] + [ids[-1] + 1] if "b" in text else ids

    verdict = check_exact(off_by_one, lambda text: len(reference(text)), reference, ["a aa", "b bb", "cc c"])
    assert not verdict.exact
    assert (verdict.encode_mismatches, verdict.count_mismatches, verdict.texts) == (1, 0, 3)
    assert "text 1" in verdict.first_mismatch
    assert check_exact(reference, None, reference, ["x y"]).exact


def test_the_worst_case_child_checks_ids_against_tiktoken() -> None:
    results = measure_pieces(["tokend"], "cl100k_base", size=20_000, timeout=120)
    assert [result.piece for result in results] == list(PIECES)
    for result in results:
        assert result.error is None, result.error
        assert result.exact is True and result.ids > 0 and result.seconds >= 0
    memory = measure_memory(["tokend"], "cl100k_base", size=1 << 16, timeout=120)
    assert [result.operation for result in memory] == ["count", "encode"]
    assert memory[0].ids == memory[1].ids > 0
    # the yardstick of encode's memory is the returned list: its 8-byte slots at least
    assert memory[0].result_bytes is None and memory[1].result_bytes >= 8 * memory[1].ids


def test_a_worst_case_cell_is_the_median_of_its_runs_and_any_failed_run_fails_it() -> None:
    from bench.worst_case import PieceResult, _median_of

    runs = tuple(PieceResult("tokend", "random letters", "encode", seconds=s, ids=5, exact=first)
                 for s, first in [(0.030, True), (0.010, None), (0.020, None)])
    median = _median_of(runs)
    assert (median.seconds, median.exact, median.ids) == (0.020, True, 5)  # the first run's check is kept
    assert _median_of(runs[:2]).seconds == 0.020  # an even count: the middle two's mean
    failed = PieceResult("tokend", "random letters", "encode", error="> 60 s")
    assert _median_of(runs + (failed,)).error == "> 60 s"
