"""Footprint of `tokend serve`: time from start to SERVING, and memory per worker with the default models.

    python -m bench service footprint [--starts 3] [--workers 2]
    python -m bench footprint          # the same

Per start (default registry, default models = every model of the embedded registry, latest version):
- "first SERVING": from just before the process is started until a grpc.health.v1 Check on a fresh
  connection answers SERVING (polled every 20 ms; a connection lands on one worker, so this is the
  first worker ready);
- "all SERVING": until the supervisor logs ``serving`` (every worker ready);
- RSS and PSS of each worker (from /proc/<pid>/status and /proc/<pid>/smaps_rollup) right after
  SERVING, and again after encoding ~1 MB of mixed text with each OpenAI model (the piece caches fill);
  the supervisor's own RSS too. PSS splits shared pages (the interpreter, shared libraries) between the
  processes that map them, so the sum of PSS is what the server really costs the machine.

Not handled: memory under a long soak (tests/reliability/test_soak.py checks RSS growth there).
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import service_report

__all__ = ["run_footprint", "process_memory_kb", "main"]

POLL_SECONDS = 0.02


def process_memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB, from /proc (Linux only)."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:  # kernels without smaps_rollup
        pss = 0
    return rss, pss


@dataclass
class StartMeasurement:
    first_serving_s: float
    all_serving_s: float
    models: list[str]
    idle: dict[int, tuple[int, int]] = field(default_factory=dict)  # worker pid -> (RSS, PSS) KiB
    loaded: dict[int, tuple[int, int]] = field(default_factory=dict)
    supervisor_rss_kb: int = 0


def _load_text() -> list[str]:
    from tests.corpus import corpus_texts

    return [text for text in corpus_texts(limit_bytes=350_000, kinds=("english", "code", "multilingual")) if "<|" not in text]


def _serving(server) -> bool:
    try:
        return server.health_status(timeout=1.0) == "SERVING"
    except Exception:  # not listening yet
        return False


def _measure_once(workers: int, texts: list[str]) -> StartMeasurement:
    from tests.support.server import TokendServer
    from tokend_api.v1 import tokenizer_pb2 as pb

    server = TokendServer(workers=workers, metrics=False, reload_interval=0, wait_until_serving=False)
    started = time.monotonic()
    server.start()
    try:
        first = all_ready = None
        deadline = started + 120
        while all_ready is None:
            now = time.monotonic()
            if now > deadline:
                raise RuntimeError(f"tokend was not SERVING within 120 s:\n{server.stderr_text()[-4000:]}")
            if server.process.poll() is not None:
                raise RuntimeError(f"tokend exited while starting:\n{server.stderr_text()[-4000:]}")
            if first is None and _serving(server):
                first = time.monotonic() - started
            if first is not None and (workers == 1 or server.all_workers_serving()):
                all_ready = time.monotonic() - started
            time.sleep(POLL_SECONDS)
        models = sorted({model for entry in server.events("worker_serving") for model in entry.get("models", [])})
        pids = server.worker_pids()
        measurement = StartMeasurement(first, all_ready, models)
        measurement.supervisor_rss_kb = process_memory_kb(server.process.pid)[0]
        measurement.idle = {pid: process_memory_kb(pid) for pid in pids}
        # Several connections so that both workers get work.
        stubs = [server.stub(server.channel(**{"grpc.use_local_subchannel_pool": 1})) for _ in range(8)]
        for model in ("cl100k_base", "o200k_base"):
            for index in range(0, len(texts), 16):
                request = pb.EncodeRequest(model=model, inputs=[pb.Input(text=text) for text in texts[index : index + 16]])
                stubs[index // 16 % len(stubs)].Encode(request, timeout=60)
        measurement.loaded = {pid: process_memory_kb(pid) for pid in pids}
        return measurement
    finally:
        server.stop()


def run_footprint(*, starts: int = 3, workers: int = 2) -> str:
    header = service_report.machine_line()
    texts = _load_text()
    measurements = []
    for number in range(starts):
        measurement = _measure_once(workers, texts)
        measurements.append(measurement)
        print(f"start {number + 1}: first SERVING {measurement.first_serving_s:.2f} s, all {measurement.all_serving_s:.2f} s, "
              f"idle {measurement.idle}, loaded {measurement.loaded}", file=sys.stderr)  # fmt: skip
    _chart(measurements)
    mb = 1024.0
    lines = [
        "## Footprint",
        "",
        header,
        f"`tokend serve --workers {workers}` on the embedded default registry (models loaded before SERVING: "
        f"{', '.join(measurements[0].models)}); {starts} starts. After-load: each worker after encoding "
        f"{sum(len(t.encode()) for t in texts) / 1e6:.1f} MB of mixed text with cl100k_base and with o200k_base. "
        + service_report.load_after_line(),
        "",
        "| start | first SERVING s | all workers SERVING s | worker RSS MiB (idle) | worker PSS MiB (idle) | worker RSS MiB (after load) | supervisor RSS MiB |",
        "|---:|---:|---:|---|---|---|---:|",
    ]
    for number, m in enumerate(measurements, 1):
        lines.append(
            f"| {number} | {m.first_serving_s:.2f} | {m.all_serving_s:.2f} | "
            f"{', '.join(f'{rss / mb:.0f}' for rss, _ in m.idle.values())} | "
            f"{', '.join(f'{pss / mb:.0f}' for _, pss in m.idle.values())} | "
            f"{', '.join(f'{rss / mb:.0f}' for rss, _ in m.loaded.values())} | {m.supervisor_rss_kb / mb:.0f} |"
        )
    first = statistics.median(m.first_serving_s for m in measurements)
    every = statistics.median(m.all_serving_s for m in measurements)
    worst = max(m.all_serving_s for m in measurements)
    rss = statistics.median(rss for m in measurements for rss, _ in m.idle.values()) / mb
    loaded = statistics.median(rss for m in measurements for rss, _ in m.loaded.values()) / mb
    lines += [
        "",
        f"Median: first worker SERVING {first:.2f} s, all workers {every:.2f} s (worst {worst:.2f} s); "
        f"RSS per worker {rss:.0f} MiB idle, {loaded:.0f} MiB after load. Target SERVING within 3 s → "
        f"{'met' if every <= 3 else 'NOT met'} (all workers, median).",
        "",
        f"![footprint]({service_report.chart_path('footprint').name})",
    ]
    return "\n".join(lines)


def _chart(measurements: list[StartMeasurement]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (times, memory) = plt.subplots(1, 2, figsize=(8, 3.6), dpi=110)
    starts = range(1, len(measurements) + 1)
    times.plot(starts, [m.first_serving_s for m in measurements], "o-", label="first worker SERVING")
    times.plot(starts, [m.all_serving_s for m in measurements], "s--", label="all workers SERVING")
    times.axhline(3, color="grey", linewidth=0.8)
    times.set_xlabel("start")
    times.set_ylabel("seconds from start")
    times.set_ylim(0, max(3.5, max(m.all_serving_s for m in measurements) * 1.15))
    times.set_xticks(list(starts))
    times.legend(fontsize=7)
    times.set_title("time to SERVING (target 3 s)", fontsize=9)
    idle = [rss / 1024 for m in measurements for rss, _ in m.idle.values()]
    loaded = [rss / 1024 for m in measurements for rss, _ in m.loaded.values()]
    pss = [value / 1024 for m in measurements for _, value in m.idle.values()]
    memory.boxplot([pss, idle, loaded], tick_labels=["PSS idle", "RSS idle", "RSS after load"])
    memory.set_ylim(bottom=0)
    memory.set_ylabel("MiB per worker")
    memory.set_title("memory per worker (all default models)", fontsize=9)
    figure.tight_layout()
    figure.savefig(service_report.chart_path("footprint"))
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    from bench.service import main as service_main

    return service_main(["footprint", *(argv or [])])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
