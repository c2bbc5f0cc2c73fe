"""Hostile load against the service: a well-behaved client's CountTokens p99 beside its idle p99, and worker
memory under large requests (issue 13 items 6 and 16, and its "done when").

    python -m bench service hostile [--quick] [--rounds 5] [--parts large,mixes,everything] [--cases NAME]

Three parts, each on fresh servers (2 workers, default limits), each idle p99 measured on the same server
just before its load (well-behaved: one ~1 KB text per call, 100 calls/s, sequential, on its own
connections; a value is the median over rounds of each round's p99):
1. Large requests (item 6), with the admission gate (`--max-work-bytes`, default 256 MiB) and without it
   (`--max-work-bytes 0`, what the server did before): p99 while a separate process keeps two 8 MiB Encodes
   of short words in flight; worker peak RSS while 10 Encodes of one 8 MiB piece arrive at once (retried on
   UNAVAILABLE, as clients do), and RSS once idle again.
2. The hostile mixes that tests/reliability/test_hostile_input.py timed before (timing moved here):
   "rejected" (small requests refused before any work, 20/s), "oversized" (9 MB over the byte limit, 2/s),
   "1 MB pieces" (valid, 1/s).
3. Every hostile case at once (tests/reliability/everything.py, with 8 MiB single pieces; the issue's
   target is p99 ≤ 3× idle), and each case alone, against one server in alternating rounds (``--rounds``):
   each round measures idle, all at once, then every case alone in a shuffled order, so each ratio has the
   idle p99 of its own round; the figure is the median ratio over rounds, with the spread. A probe thread in
   each worker (bench/gil_probe, loaded through PYTHONPATH) separates waits for the GIL (what the server's
   own code holds) from waits for a CPU (run-queue time from /proc: other processes).

The load generators share the machine's 2 cores with the server: read the ratios, not the milliseconds.
The hostile gRPC senders run at the lowest CPU priority (``SENDER_NICENESS``).

    python -m bench service hostile --parts everything --cases "6 big" --rounds 3   # some cases only
    python -m bench service hostile --parts everything --server-arg=--bulk-lane-policy=idle   # A/B a setting
    python -m bench service hostile --parts everything --together-only --without "8 " --without "12 "
        # idle and all at once only (about a minute), leaving out the cases whose names contain "8 " or "12 ":
        # for bisecting which cases make the all-at-once p99 together
    python -m bench service hostile --parts everything --together-only --rounds 8 \\
        --all-but "templates=template:" --all-but "big=6 big|10 8 MiB"
        # also, each round, the mix without those cases, in a shuffled order with "all": each subset's p99 is
        # compared with "all" of the same round (load from outside the benchmark falls on both alike)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import string
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import service_report

REPO = Path(__file__).resolve().parent.parent
MiB = 1 << 20
TEXT = ("Well-behaved callers send ordinary text of about one kilobyte. " * 17)[:1024]
_CHANNEL = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.use_local_subchannel_pool", 1)]  # fmt: skip


def _tests_on_path() -> None:
    for path in (str(REPO / "tests"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)


def p99_rounds(target: str, rounds: int, calls: int = 200, rate: float = 100.0) -> list[float]:
    """p99 (seconds) of each round of well-behaved CountTokens calls paced at ``rate``."""
    import grpc

    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    channels = [grpc.insecure_channel(target, options=_CHANNEL) for _ in range(2)]
    stubs = [tokenizer_pb2_grpc.TokenizerStub(channel) for channel in channels]
    request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=TEXT)])
    result = []
    try:
        for _ in range(rounds):
            latencies, started = [], time.perf_counter()
            for index in range(calls):
                delay = started + index / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                sent = time.perf_counter()
                stubs[index % 2].CountTokens(request, timeout=60)
                latencies.append(time.perf_counter() - sent)
            latencies.sort()
            result.append(latencies[max(0, int(0.99 * len(latencies)) - 1)])
    finally:
        for channel in channels:
            channel.close()
    return result


def _stream_words(target: str, in_flight: int, stop, ready) -> None:
    """A separate process: ``in_flight`` 8 MiB Encodes of short words, each sent when the last returns."""
    import grpc

    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    os.nice(SENDER_NICENESS)
    rng = random.Random(1)
    words = " ".join("".join(rng.choices("etaoinshrdlu", k=rng.randint(2, 9))) for _ in range(1_400_000))
    request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=words[: 8 * MiB - 64])])

    def loop() -> None:
        stub = tokenizer_pb2_grpc.TokenizerStub(grpc.insecure_channel(target, options=_CHANNEL))
        while not stop.is_set():
            try:
                stub.Encode(request, timeout=300)
            except grpc.RpcError:
                time.sleep(0.1)

    threads = [threading.Thread(target=loop) for _ in range(in_flight)]
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()


def _memory(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) // 1024, int(fields["VmRSS"].split()[0]) // 1024


def _burst_of_big_pieces(server, count: int) -> tuple[dict[int, tuple[int, int, int]], int]:
    """``count`` single-piece 8 MiB Encodes at once, retried on UNAVAILABLE; per worker (RSS before, peak,
    RSS after) in MiB, and how many UNAVAILABLE answers were retried."""
    import grpc

    from tokend_api.v1 import tokenizer_pb2 as pb

    piece = "".join(random.Random(5).choices(string.ascii_letters, k=8 * MiB - 64))
    request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=piece)])
    pids = server.worker_pids()
    before = {}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        before[pid] = _memory(pid)[1]
    retried = 0

    def encode(_: int) -> None:
        nonlocal retried
        stub = server.stub(server.channel(**dict(_CHANNEL)))
        while True:
            try:
                stub.Encode(request, timeout=600)
                return
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                retried += 1
                time.sleep(0.2)

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(encode, range(count)))
    time.sleep(1.0)
    return {pid: (before[pid], *_memory(pid)) for pid in pids}, retried


def run_large(args: argparse.Namespace) -> list[str]:
    from tests.support.server import TokendServer

    rows = []
    for label, budget in (("with the gate (256 MiB per worker)", None), ("without it (--max-work-bytes 0)", "0")):
        extra = ("--max-work-bytes", budget) if budget is not None else ()
        server = TokendServer(*extra, workers=2, metrics=False, reload_interval=0).start()
        try:
            p99_rounds(server.target, 1)
            idle = statistics.median(p99_rounds(server.target, args.rounds))
            context = multiprocessing.get_context("spawn")
            stop, ready = context.Event(), context.Event()
            sender = context.Process(target=_stream_words, args=(server.target, 2, stop, ready), daemon=True)
            sender.start()
            ready.wait(120)
            time.sleep(3.0)
            loaded = statistics.median(p99_rounds(server.target, args.rounds))
            stop.set()
            sender.join(300)
            memory, retried = _burst_of_big_pieces(server, 4 if args.quick else 10)
        finally:
            server.stop()
        rss = "; ".join(f"{start} → peak {peak} → {after}" for start, peak, after in memory.values())
        rows.append(f"| {label} | {idle * 1e3:.2f} | {loaded * 1e3:.2f} | {loaded / idle:.1f}× | {rss} | {retried} |")
        print(rows[-1], file=sys.stderr)
    return [
        "### Large requests (item 6)",
        "",
        f"p99: well-behaved CountTokens while two 8 MiB Encodes of short words are always in flight ({args.rounds} "
        f"rounds of 200 calls at 100/s). Memory: {4 if args.quick else 10} Encodes of one 8 MiB piece sent at once; "
        "RSS of each worker before, its peak, and after (MiB); UNAVAILABLE answers (\"busy with large requests\") "
        "retried by the sender.",
        "",
        "| server | idle p99 ms | p99 under 8 MiB Encodes ms | ratio | worker RSS MiB: before → peak → after | retried |",
        "|---|---:|---:|---:|---|---:|",
        *rows,
    ]


def run_mixes(args: argparse.Namespace) -> list[str]:
    _tests_on_path()
    from reliability.hostile_mix import start_sender, stop_sender
    from tests.support.server import TokendServer

    rates = {"rejected": 20.0, "oversized": 2.0, "1 MB pieces": 1.0}
    rows = []
    server = TokendServer(workers=2, metrics=False, reload_interval=0).start()
    try:
        p99_rounds(server.target, 1)
        idle = statistics.median(p99_rounds(server.target, args.rounds))
        for mix, rate in rates.items():
            sender = start_sender(server.target, mix, rate=rate)
            try:
                loaded = statistics.median(p99_rounds(server.target, args.rounds))
            finally:
                sent, wrong = stop_sender(*sender)
            rows.append(f"| {mix} | {rate:g} | {idle * 1e3:.2f} | {loaded * 1e3:.2f} | {loaded / idle:.1f}× | "
                        f"{sent} | {len(wrong)} |")  # fmt: skip
            print(rows[-1], file=sys.stderr)
    finally:
        server.stop()
    return [
        "### Hostile mixes",
        "",
        "| mix | hostile requests/s | idle p99 ms | p99 under the mix ms | ratio | hostile requests | unexpected statuses |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


PROBE = Path(__file__).resolve().parent / "gil_probe"
# The processes that send hostile gRPC requests run at the lowest CPU priority: in production they are
# other machines, and here they would otherwise take the cores the server and the measuring client need.
# Where the kernel groups processes by session (autogroups, /proc/sys/kernel/sched_autogroup_enabled: on on the
# project's VMs), a niceness ranks a thread only within its session, and the server runs in a session of its own
# (tests/support/server.py): against the server the senders weigh as a nice-0 process. Measured, they use ~5 %
# of a core each (the gRPC sender, this process's HTTP threads), so it was not changed (docs/decisions.md,
# "What moving work off a worker's GIL could buy").
SENDER_NICENESS = 19


def _cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _process_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the processes used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _probe_waits(directory: Path, pids: list[int], start: float, end: float) -> tuple[list[float], list[float], int]:
    """The GIL waits and CPU waits (seconds) of the probe's late wakes in [start, end) across ``pids``,
    and how many wakes there were in whole seconds of the window."""
    gil, cpu, wakes = [], [], 0
    for pid in pids:
        path = directory / f"{pid}.txt"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[0] == "wakes":
                if len(parts) == 3 and start <= int(parts[1]) and int(parts[1]) + 1 <= end:
                    wakes += int(parts[2])
            elif len(parts) == 3 and start <= float(parts[0]) < end:
                gil.append(float(parts[1]))
                cpu.append(float(parts[2]))
    return gil, cpu, wakes


def _collections(directory: Path, pids: list[int], start: float, end: float) -> list[tuple[float, float]]:
    """(wall, CPU) seconds of each garbage-collector pass of >= 0.5 ms in [start, end) across ``pids``."""
    passes = []
    for pid in pids:
        path = directory / f"{pid}.gc.txt"
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) == 4 and start <= float(parts[0]) < end:
                    passes.append((float(parts[2]), float(parts[3])))
    return passes


def _quantile(values: list[float], wakes: int, q: float) -> float:
    """The q-quantile over all ``wakes`` wakes, of which ``values`` are the late ones (others count as 0)."""
    if not values or wakes <= 0:
        return 0.0
    ordered = sorted(values, reverse=True)
    rank = int((1 - q) * wakes)
    return ordered[rank] if rank < len(ordered) else 0.0


def _measure_in_process(target: str, connection) -> None:
    """The well-behaved client in a process of its own (its own GIL): each ``calls`` received is answered
    with the p99 of that many calls; None ends it."""
    while (calls := connection.recv()) is not None:
        connection.send(p99_rounds(target, 1, calls=calls)[0])


class _Measurer:
    """The well-behaved client, kept out of the bench process, whose threads send the HTTP cases: with
    them in one interpreter, the measured calls waited for that process's GIL, not for the server."""

    def __init__(self, target: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_measure_in_process, args=(target, child), daemon=True)
        self._process.start()

    def p99(self, calls: int) -> float:
        self._connection.send(calls)
        return self._connection.recv()

    def close(self) -> None:
        self._connection.send(None)
        self._process.join(30)


def _wait_quiet(world, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while world.in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)


def all_but_phases(cases: list[str], specs: list[str]) -> dict[str, set[str]]:
    """``--all-but`` specs (``LABEL=WORD|WORD...``) -> {"all but LABEL": the cases whose names contain none of
    the WORDs}. A spec without a WORD, or whose WORDs leave no case out (a typo), is refused.

        all_but_phases(["template: a", "6 big"], ["templates=template:"])   # {"all but templates": {"6 big"}}
    """
    phases = {}
    for spec in specs:
        label, _, words = spec.partition("=")
        left_out = [word for word in words.split("|") if word]
        if not label or not left_out:
            raise SystemExit(f"--all-but {spec!r}: give LABEL=WORD|WORD... (the cases to leave out contain a WORD)")
        sent = {case for case in cases if not any(word in case for word in left_out)}
        if len(sent) == len(cases):
            raise SystemExit(f"--all-but {spec!r}: no case's name contains {' or '.join(map(repr, left_out))}")
        phases[f"all but {label}"] = sent
    return phases


def run_everything(args: argparse.Namespace) -> list[str]:
    """Idle, every case alone, and every case at once, against one server, in alternating rounds."""
    _tests_on_path()
    from reliability.everything import DOCUMENTED_INTERNAL, HostileWorld

    calls = 150 if args.quick else 300
    rounds = args.rounds
    samples: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="tokend-bench-hostile-") as directory:
        probe = Path(directory) / "probe"
        probe.mkdir()
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROBE), os.environ.get("PYTHONPATH", "")])),
               "GIL_PROBE_DIR": str(probe)}  # fmt: skip
        with HostileWorld(Path(directory), big_bytes=(2 if args.quick else 8) * MiB, env=env,
                          server_args=tuple(args.server_args), sender_niceness=SENDER_NICENESS) as world:  # fmt: skip
            target = world.server.target
            pids = world.server.worker_pids()
            measurer = _Measurer(target)
            measurer.p99(200)  # warm-up: connections, the server's caches
            # The HTTP senders are threads of this process started from here on: they run at the gRPC senders'
            # niceness (in production they are other machines). os.nice is per thread on Linux, so the threads
            # started before (the registry's HTTP origin, the server, the measuring client) keep theirs.
            os.nice(SENDER_NICENESS)
            world.start(cases=set())
            cases = [case for case in world.case_names() if (not args.cases or any(w in case for w in args.cases))
                     and not any(w in case for w in args.without)]  # fmt: skip
            print(f"cases: {', '.join(cases)}", file=sys.stderr)
            subsets = all_but_phases(cases, args.all_but)
            for phase, sent in subsets.items():
                print(f"{phase}: leaves out {', '.join(sorted(set(cases) - sent))}", file=sys.stderr)
            for round_index in range(rounds):
                alone = [] if args.together_only else random.Random(round_index).sample(cases, len(cases))
                # "all" and every "all but ..." in a shuffled order after idle: a subset's ratio then has the
                # same rounds, and load from outside the benchmark falls on each alike
                together = random.Random(1000 + round_index).sample(["all", *subsets], 1 + len(subsets))
                order = ["idle", *together, *alone]
                for phase in order:
                    world.enable(set() if phase == "idle" else set(cases) if phase == "all"
                                 else subsets[phase] if phase in subsets else {phase})  # fmt: skip
                    # a case alone: its first request lands in the window
                    time.sleep(1.5 if phase == "all" or phase in subsets else 0.2)
                    busy0, cpu0, workers0, start = *_cpu_busy(), _process_cpu(pids), time.time()
                    p99 = measurer.p99(calls)
                    busy1, cpu1, workers1, end = *_cpu_busy(), _process_cpu(pids), time.time()
                    world.enable(set())
                    _wait_quiet(world)
                    time.sleep(1.1)  # the probe writes once a second
                    gil, cpu, wakes = _probe_waits(probe, pids, start, end)
                    passes = _collections(probe, pids, start, end)
                    samples.setdefault(phase, []).append({
                        "p99": p99, "busy": (busy1 - busy0) / max(1, cpu1 - cpu0), "workers": (workers1 - workers0) / (end - start),
                        "gil_max": max(gil, default=0.0), "gil_q": _quantile(gil, wakes, 0.999),
                        "cpu_max": max(cpu, default=0.0), "gil_over_5": sum(g for g in gil if g > 0.005) / (end - start),
                        "gc_max": max(passes, default=(0.0, 0.0)),
                    })  # fmt: skip
                idle_p99 = samples["idle"][-1]["p99"]
                print(f"round {round_index + 1}/{rounds}: idle {idle_p99 * 1e3:.1f} ms, " + ", ".join(
                    f"{phase} {samples[phase][-1]['p99'] * 1e3:.1f} ms ({samples[phase][-1]['p99'] / idle_p99:.1f}x)"
                    for phase in ["all", *subsets]), file=sys.stderr)  # fmt: skip
            measurer.close()
            outcome = world.stop()
            died = world.server.events("worker_died")
    internal = {case for case, counts in outcome.statuses.items() if {"INTERNAL", "UNKNOWN"} & set(counts)}
    idle = [sample["p99"] for sample in samples["idle"]]

    def row(phase: str) -> str:
        got = samples[phase]
        ratios = sorted(sample["p99"] / base for sample, base in zip(got, idle))
        med = lambda key: statistics.median(sample[key] for sample in got)  # noqa: E731
        longest_gc = max(sample["gc_max"] for sample in got)
        return (f"| {phase} | {med('p99') * 1e3:.1f} | **{statistics.median(ratios):.1f}×** | {ratios[0]:.1f}–{ratios[-1]:.1f}× | "
                f"{max(s['gil_max'] for s in got) * 1e3:.0f} | {med('gil_q') * 1e3:.1f} | {med('gil_over_5') * 100:.1f}% | "
                f"{max(s['cpu_max'] for s in got) * 1e3:.0f} | {longest_gc[0] * 1e3:.1f} ({longest_gc[1] * 1e3:.1f}) | "
                f"{med('workers') * 100:.0f}% | {med('busy') * 100:.0f}% |")  # fmt: skip

    rows = [row("idle"), row("all")] + [row(phase) for phase in samples if phase.startswith("all but ")] + sorted(
        (row(case) for case in samples if case not in ("idle", "all") and not case.startswith("all but ")),
        key=lambda line: -float(line.split("**")[1].rstrip("×")))  # fmt: skip
    ratio = statistics.median(sample["p99"] / base for sample, base in zip(samples["all"], idle))

    def subset_line(phase: str) -> str:
        to_all = [sample["p99"] / every["p99"] for sample, every in zip(samples[phase], samples["all"])]
        return (f"{phase.capitalize()}: {statistics.median(to_all):.2f}× the p99 of every case at once in the same "
                f"round (median; per round {', '.join(f'{value:.2f}' for value in to_all)}).")
    return [
        "### Every hostile case at once, and each alone",
        "",
        f"tests/reliability/everything.py ({2 if args.quick else 8} MiB single pieces) against one server "
        f"(2 workers{''.join(' ' + arg for arg in args.server_args)}). {rounds} rounds; each round measures idle, every case at once, then each case alone "
        f"(in a shuffled order), {calls} well-behaved CountTokens calls at 100/s per phase (from a process of "
        f"their own; the hostile senders, gRPC and HTTP, at nice {SENDER_NICENESS}), so every ratio is "
        f"against the idle p99 of its own round; the tables give the median ratio over rounds and its spread. "
        f"Idle p99 per round: {', '.join(f'{value * 1e3:.1f}' for value in idle)} ms.",
        "",
        f"**Every case at once: {ratio:.1f}× idle** (median of {rounds} rounds) — target ≤ 3×: "
        f"{'met' if ratio <= 3 else 'NOT met'}. Hostile requests: {sum(sum(c.values()) for c in outcome.statuses.values())}, "
        f"unexpected statuses: {len(outcome.unexpected)}, INTERNAL/UNKNOWN outside the documented framing case: "
        f"{sorted(internal - {DOCUMENTED_INTERNAL}) or 'none'}, workers died: {len(died)}.",
        *[subset_line(phase) for phase in samples if phase.startswith("all but ")],
        "",
        "Columns: the p99 of the phase (median over rounds) and its ratio to the same round's idle p99; from a "
        "probe thread in each worker that sleeps 1 ms in a loop (bench/gil_probe): the longest time it waited "
        "for the GIL after waking (max over rounds), the 99.9th percentile of its waits, the share of the "
        "phase it spent in waits over 5 ms (summed over both workers), and its longest wait for a CPU "
        "(run-queue time, i.e. cores taken by other processes); the longest pass of a worker's garbage collector "
        "(which holds the GIL throughout), wall time and, in brackets, the CPU time it took (max over rounds); the workers' CPU use (100% = one core) and "
        "the whole machine's (100% = both cores busy: senders, measuring client, other users of the machine).",
        "",
        "| phase | p99 ms | ratio to idle | spread | longest GIL wait ms | GIL wait p99.9 ms | waits > 5 ms | "
        "longest CPU wait ms | longest GC pass ms (CPU) | workers' CPU | machine busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def run_hostile(args: argparse.Namespace) -> str:
    header = service_report.machine_line()
    lines = ["## Hostile load", "", header, ""]
    parts = {"large": run_large, "mixes": run_mixes, "everything": run_everything}
    chosen = {name.strip() for name in args.parts.split(",")}
    if chosen - parts.keys():
        raise SystemExit(f"unknown --parts {sorted(chosen - parts.keys())}; choose from {', '.join(parts)}")
    for name in [name for name in parts if name in chosen]:  # "everything" last: it lowers this process's priority
        lines += parts[name](args) + [""]
    lines += [
        service_report.load_after_line(),
        "",
        "Read with the machine in mind: 2 cores shared by both workers, the playground, the hostile senders, "
        "the measuring client and whatever else runs on the machine (the \"machine busy\" column). The hostile "
        f"senders (gRPC; HTTP in the everything part) run at nice {SENDER_NICENESS} (in production they are "
        "other machines; with the kernel's autogroups on, that ranks them only against the benchmark's own "
        "processes, not the server's); the measuring client does not. A large ratio with short GIL waits is a wait for a "
        "core; the "
        "GIL columns are what the server's own code holds. The memory rows are what the admission gate bounds.",
    ]
    return "\n".join(lines)
