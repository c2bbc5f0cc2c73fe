"""docs/bench-service.md: one file, one section per service benchmark, each replaced by its own run.

Each benchmark (batch, latency, footprint) is a separate command, so each rewrites only the text
between its markers (``<!-- batch:begin -->`` … ``<!-- batch:end -->``); the table and the chart of a
section always come from the same run. Charts are PNGs beside the page (docs/bench-service-<name>.png).

    write_section("latency", "## CountTokens latency\\n\\n| ... |")
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

__all__ = ["DOCS", "PAGE", "SECTIONS", "write_section", "chart_path", "machine_line", "load_after_line"]

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGE = DOCS / "bench-service.md"
SECTIONS = ("batch", "latency", "footprint", "hostile")

_INTRO = """# Service benchmarks

tokend over gRPC beside tiktoken in-process and beside a FastAPI/uvicorn HTTP wrapper around tiktoken
(`bench/http_wrapper.py`, what many teams write instead). One command per section:

    pip install -r bench/requirements.txt        # benchmark-only dependencies
    python -m bench service batch                # Encode throughput (MB/s, tokens/s)
    python -m bench service latency              # CountTokens latency at fixed offered loads (open loop)
    python -m bench service footprint            # RSS per worker, time from start to SERVING
    python -m bench service hostile              # a well-behaved p99 under hostile load; memory under large requests
    python -m bench service percall              # server CPU per CountTokens call, A/B of builds beside the grpcio floors
    python -m bench service all                  # the four in a row (each < ~2-5 min by default)

Each section below is rewritten by its own command; its table and chart come from the same run. The
load generator runs on the same machine as the servers and shares its cores with them (see each
section). Method and caveats: `bench/service.py`, `bench/loadgen.py`, `bench/footprint.py`.

The service's behaviour under faults and hostile input is tested in `tests/reliability/` (statuses,
answers, crashes, memory bounds — never timing): a soak of mixed requests with every answer checked
against tiktoken and worker RSS watched (`test_soak.py`; 6,000 requests by default, the
100,000-request variant is marked `slow`), SIGKILL of a worker under load (`test_worker_kill.py`),
SIGTERM under load (`test_sigterm.py`), a model version corrupted on disk under load
(`test_corrupt_model.py`), hostile input (`test_hostile_input.py`), every hostile case of issue 13 at once
(`test_everything_at_once.py`) and hypothesis fuzzing through the client and with raw request bytes
(`test_fuzz.py`). What hostile load does to a well-behaved client's latency is the "Hostile load" section
below (`bench/service_hostile.py`).
"""


def machine_line() -> str:
    """One line naming the machine and its load, for the top of a section."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load average before the run: {load}."
    )


def load_after_line() -> str:
    """The load average after a run: other processes on the machine show up here."""
    return "Load average after the run: " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + "."


def chart_path(name: str) -> Path:
    return DOCS / f"bench-service-{name}.png"


def write_section(name: str, markdown: str, page: Path = PAGE) -> Path:
    """Replace section ``name`` of ``page`` with ``markdown`` (creating the page or section as needed)."""
    if name not in SECTIONS:
        raise ValueError(f"unknown section {name!r}; use one of {', '.join(SECTIONS)}")
    text = page.read_text() if page.exists() else _INTRO
    blocks = {}
    for section in SECTIONS:
        begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
        if begin in text and end in text:
            blocks[section] = text[text.index(begin) + len(begin) : text.index(end)].strip("\n")
    blocks[name] = markdown.strip("\n")
    parts = [_INTRO.rstrip("\n"), ""]
    for section in SECTIONS:
        body = blocks.get(section, f"_Not run yet: `python -m bench service {section}`._")
        parts += [f"<!-- {section}:begin -->", body, f"<!-- {section}:end -->", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    tmp = page.with_suffix(".md.tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(page)
    return page
