"""`python -m bench service percall` (bench/service_percall.py) runs end to end against the bare grpcio floor
(one round, a short run; the numbers are never asserted), and its py-spy summary (bench/percall_profile.py)
charges each sample to one part."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.percall_profile import summarize
from bench.service_percall import Side

REPO = Path(__file__).resolve().parents[2]


def test_a_short_run_against_the_floor_reports_its_cpu_per_call() -> None:
    command = [sys.executable, "-m", "bench", "service", "percall", "--side", "floor=floor:4", "--rounds", "1",
               "--seconds", "1", "--rates", "200"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("| floor |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "grpcio thread pool (4 threads)" and cells[2] == "200"
    assert float(cells[3].split()[0]) > 0  # CPU per call, ms
    assert cells[8] == "0"  # errors


@pytest.mark.parametrize(("spec", "expected"), [
    ("A=tokend:.", ("A", "tokend", REPO, 32)),
    ("f=floor:8", ("f", "floor", REPO, 8)),
    ("x=aio", ("x", "aio", REPO, 32)),
])  # fmt: skip
def test_sides_parse(spec, expected, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    side = Side.parse(spec)
    assert (side.name, side.kind, side.tree, side.threads) == expected


def test_each_sample_goes_to_its_innermost_part() -> None:
    folded = "\n".join([
        "thread (1): tokend-rpc_0;run (concurrent/futures/thread.py:58);handle (tokend/server/metrics_interceptor.py:42);"
        "inc (prometheus_client/values.py:115);getpid (libc.so.6) 3",
        "thread (1): tokend-rpc_0;run (concurrent/futures/thread.py:58);count (tokend/service/tokenizer.py:120);"
        "count (tokend/engine/encoding.py:300) 1",
        "thread (2): grpc_server;_serve (grpc/_server.py:1318);notify (threading.py:380) 4",
    ])  # fmt: skip
    summary = summarize(folded, calls=4)
    assert "8 samples over 4 calls" in summary
    assert "| metrics (prometheus) | 37.5% | 37.5% | 0.0% |" in summary
    assert "| engine (count) | 12.5% | 12.5% | 0.0% |" in summary
    assert "| thread pool / queues | 50.0% | 0.0% | 50.0% |" in summary
