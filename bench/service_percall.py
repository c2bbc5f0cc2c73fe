"""Server CPU per CountTokens call, A/B between builds and beside the bare grpcio floors (issue 18).

    python -m bench service percall                                  # this checkout beside the floor, 1 worker, 1,500/s
    python -m bench service percall --side A=tokend:/tmp/base --side B=tokend:. --side floor=floor:32 --rounds 5
    python -m bench service percall --workers 2 --rates 2000,4000 --side floor=floor:32 --side aio=aio
    python -m bench service percall --side B=tokend:. --rounds 1 --profile B      # + py-spy of B's first worker

Each side is a server of ``--workers`` processes started once: ``tokend:<tree>`` is `tokend serve` from that
source tree (its ``service/src``, ``api/src`` and ``client/src`` on PYTHONPATH, native modules built there;
embedded default models, metrics on, playground off), ``floor:<threads>`` and ``aio`` are bench/grpc_floor.py (the tree's own)
(the same engine with nothing else: the thread-pool server with that many threads, or grpc.aio). One client
process, this one, sends ~1 KB English CountTokens (cl100k_base, texts of bench/service.py's latency section)
at each fixed rate for ``--seconds`` (open loop, bench/loadgen.py), over 8 connections; the server's CPU per
call is the user + system CPU of its worker processes over the run (/proc, bench/server_cpu.py) divided by
the calls answered; the generator's own CPU per call sent is shown too (it shares the cores: a rate needs
the sum of both per call, times the rate, below the machine's cores). Rounds alternate: each round runs every side once per rate, the order rotated from round
to round, so each side sees the same moments of a shared machine. The table gives the median and the range
over the rounds.

Why CPU per call: on 2 cores shared with the generator (and other work), latency mostly measures the machine;
a worker's CPU per call is what it costs, and bounds what 2 workers can answer (2 cores / CPU per call).
Idle work (gRPC's pollers, the worker's 1 s wait) is in it too: at 1,500/s it is noise.

``--profile SIDE``: after the rounds, one more run of that side at the first rate with py-spy
(``record --native --gil --rate 500 --format raw``: the thread holding the GIL, so Python's work, not gRPC
core's or the kernel's without it) attached to its first worker; the folded stacks go to
``--profile-dir`` and a summary by where time goes (bench/percall_profile.py) is printed.

Not handled: servers on other machines; a tree whose native modules are not built (its import fails at start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import GrpcTarget, run_open_loop
from bench.server_cpu import process_cpu_split

__all__ = ["main", "build_parser"]

REPO = Path(__file__).resolve().parent.parent
COUNT_TEXT_BYTES = 1024


@dataclass(frozen=True)
class Side:
    """One server to measure: ``kind`` is "tokend", "floor" or "aio"; ``tree`` the source tree it imports."""

    name: str
    kind: str
    tree: Path
    threads: int = 32
    extra_env: tuple[tuple[str, str], ...] = ()  # --env NAME:KEY=VALUE (a setting, TOKEND_* included)

    @classmethod
    def parse(cls, spec: str) -> Side:
        """``NAME=tokend:TREE``, ``NAME=floor:THREADS[:TREE]`` or ``NAME=aio[:TREE]``."""
        name, _, rest = spec.partition("=")
        kind, _, arg = rest.partition(":")
        if not name or kind not in ("tokend", "floor", "aio"):
            raise argparse.ArgumentTypeError(f"--side {spec!r}: use NAME=tokend:TREE, NAME=floor:THREADS[:TREE] or NAME=aio[:TREE]")
        if kind == "tokend":
            return cls(name, kind, Path(arg or ".").resolve())
        if kind == "floor":
            threads, _, tree = arg.partition(":")
            return cls(name, kind, Path(tree or ".").resolve(), int(threads or 32))
        return cls(name, kind, Path(arg or ".").resolve())

    def env(self) -> dict[str, str]:
        paths = [str(self.tree / part / "src") for part in ("service", "api", "client")]
        env = {key: value for key, value in os.environ.items() if not key.startswith("TOKEND_")}
        env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO)])
        env.update(self.extra_env)
        return env

    def check_tree(self) -> str:
        """The ``tokend`` package file this side's processes import; raises when it is not the tree's."""
        found = subprocess.run(
            [sys.executable, "-c", "import tokend.server.grpc_server, tokend; print(tokend.__file__)"],
            env=self.env(), capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
        if not found or not Path(found).resolve().is_relative_to(self.tree):
            raise SystemExit(f"side {self.name}: {self.tree} gives no importable tokend (got {found or 'an import error'})")
        return found

    @contextlib.contextmanager
    def running(self, workers: int) -> Iterator[tuple[str, list[int]]]:
        """The started server: (address, worker pids)."""
        self.check_tree()
        if self.kind == "tokend":
            from tests.support.server import TokendServer

            env = {"PYTHONPATH": self.env()["PYTHONPATH"], **dict(self.extra_env)}
            server = TokendServer(workers=workers, env=env, reload_interval=0).start()
            try:
                yield server.target, server.worker_pids()
            finally:
                server.stop()
            return
        from bench.service import free_port

        port = free_port()
        command = [sys.executable, "-m", "bench.grpc_floor", "--port", str(port), "--threads", str(self.threads)]
        if self.kind == "aio":
            command.append("--aio")
        processes = [
            subprocess.Popen(command, cwd=self.tree, env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
            for _ in range(workers)
        ]  # fmt: skip
        try:
            for process in processes:
                if process.stdout.readline().strip() != b"serving":  # type: ignore[union-attr]
                    raise RuntimeError(f"side {self.name}: bench.grpc_floor did not start")
            yield f"127.0.0.1:{port}", [process.pid for process in processes]
        finally:
            for process in processes:
                process.kill()
                process.wait(30)


@dataclass
class Run:
    side: str
    rate: float
    round: int
    calls: int
    errors: int
    error_codes: str
    cpu_user_s: float
    cpu_system_s: float
    p50_ms: float
    p99_ms: float
    achieved_rps: float
    max_lag_ms: float
    load: float  # 1-minute load average at the start
    client_cpu_s: float = float("nan")  # this process's (the generator's) CPU during the run

    @property
    def cpu_per_call_ms(self) -> float:
        if not self.calls or self.errors > 0.01 * (self.calls + self.errors):
            return float("nan")
        return (self.cpu_user_s + self.cpu_system_s) / self.calls * 1e3


@dataclass
class Session:
    sides: list[Side]
    addresses: dict[str, str] = field(default_factory=dict)
    pids: dict[str, list[int]] = field(default_factory=dict)
    runs: list[Run] = field(default_factory=list)


async def _measure(target: GrpcTarget, items: list, pids: list[int], *, side: str, rate: float, seconds: float, round_: int) -> Run:
    load = os.getloadavg()[0]
    before = process_cpu_split(pids)
    client_before = time.process_time()
    result = await run_open_loop(lambda i: target.count(*items[i % len(items)]), rate=rate, duration=seconds)
    client_cpu = time.process_time() - client_before
    after = process_cpu_split(pids)
    return Run(
        side, rate, round_, result.ok, result.errors, result.error_summary(), after[0] - before[0], after[1] - before[1],
        result.percentile(0.5) * 1e3, result.percentile(0.99) * 1e3, result.achieved_rps, result.max_lag_s * 1e3, load,
        client_cpu,
    )  # fmt: skip


async def _rounds(args: argparse.Namespace, session: Session, texts: tuple[list[str], list[str]]) -> None:
    warm, measure = texts
    targets = {side.name: GrpcTarget(session.addresses[side.name], connections=args.connections, timeout=args.deadline)
               for side in session.sides}  # fmt: skip
    try:
        any_target = next(iter(targets.values()))
        items = [(any_target.count_request(text), len(text.encode())) for text in measure]
        warm_items = [(any_target.count_request(text), len(text.encode())) for text in warm]
        for side in session.sides:  # every worker has counted text and made each connection before the rounds
            await run_open_loop(lambda i, t=targets[side.name]: t.count(*warm_items[i % len(warm_items)]), rate=300, duration=2.0)
        names = [side.name for side in session.sides]
        for round_ in range(args.rounds):
            order = names[round_ % len(names):] + names[: round_ % len(names)]
            for name in order:
                for rate in args.rates:
                    run = await _measure(targets[name], items, session.pids[name], side=name, rate=rate,
                                         seconds=args.seconds, round_=round_)  # fmt: skip
                    session.runs.append(run)
                    print(f"round {round_ + 1} {name:>8} {rate:6g}/s: CPU/call {run.cpu_per_call_ms:.3f} ms "
                          f"(kernel {run.cpu_system_s / max(run.cpu_user_s + run.cpu_system_s, 1e-9):.0%}) "
                          f"p50 {run.p50_ms:.2f} p99 {run.p99_ms:.2f} ms, {run.achieved_rps:.0f}/s, errors {run.error_codes}, "
                          f"lag {run.max_lag_ms:.1f} ms, load {run.load:.2f}, generator CPU/call "
                          f"{run.client_cpu_s / max(run.calls + run.errors, 1) * 1e3:.3f} ms", file=sys.stderr, flush=True)  # fmt: skip
        if args.profile:
            await _profiled_run(args, session, targets[args.profile], items)
    finally:
        for target in targets.values():
            await target.close()


async def _profiled_run(args: argparse.Namespace, session: Session, target: GrpcTarget, items: list) -> None:
    from bench.percall_profile import summarize

    out_dir = Path(args.profile_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = session.pids[args.profile][0]
    folded = out_dir / f"{args.profile}-{pid}.folded"
    seconds = args.profile_seconds
    spy = subprocess.Popen(
        [str(Path(sys.executable).with_name("py-spy")), "record", "--native", "--gil", "--threads", "--rate", "500",
         "--format", "raw", "-d", str(int(seconds + 1)), "-p", str(pid), "-o", str(folded)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    await asyncio.sleep(1.0)  # py-spy attaches
    run = await _measure(target, items, [pid], side=args.profile, rate=args.rates[0], seconds=seconds, round_=-1)
    _, err = spy.communicate(timeout=120)
    print(f"profiled run: CPU/call {run.cpu_per_call_ms:.3f} ms with py-spy attached; {folded}", file=sys.stderr)
    if spy.returncode != 0 or not folded.exists():
        print(f"py-spy failed ({spy.returncode}): {err.decode(errors='replace')[-2000:]}", file=sys.stderr)
        return
    print(summarize(folded.read_text(), calls=run.calls))


def _median_range(values: list[float], digits: int = 3) -> str:
    values = [value for value in values if value == value]
    if not values:
        return "nan"
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def report(args: argparse.Namespace, session: Session) -> str:
    lines = [
        f"CountTokens, ~1 KB English, {args.workers} worker(s) per server, {args.seconds:g} s per run, "
        f"{args.rounds} rounds alternated; median (range) over the rounds.",
        "",
        "| side | server | rate /s | CPU per call ms | kernel share | p50 ms | p99 ms | achieved /s | errors | max lag ms "
        "| generator CPU per call ms |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in session.sides:
        settings = "".join(f", {key}={value}" for key, value in side.extra_env)
        server = {"tokend": f"tokend serve ({side.tree}{settings})", "floor": f"grpcio thread pool ({side.threads} threads)",
                  "aio": "grpc.aio"}[side.kind]  # fmt: skip
        for rate in args.rates:
            runs = [run for run in session.runs if run.side == side.name and run.rate == rate]
            kernel = [run.cpu_system_s / (run.cpu_user_s + run.cpu_system_s) * 100 for run in runs if run.cpu_user_s + run.cpu_system_s]
            lines.append(
                f"| {side.name} | {server} | {rate:g} | {_median_range([run.cpu_per_call_ms for run in runs])} | "
                f"{_median_range(kernel, 0)}% | {_median_range([run.p50_ms for run in runs], 2)} | "
                f"{_median_range([run.p99_ms for run in runs], 2)} | {_median_range([run.achieved_rps for run in runs], 0)} | "
                f"{sum(run.errors for run in runs)} | {_median_range([run.max_lag_ms for run in runs], 1)} | "
                f"{_median_range([run.client_cpu_s / max(run.calls + run.errors, 1) * 1e3 for run in runs])} |"
            )  # fmt: skip
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench service percall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", action="append", type=Side.parse, default=[], dest="sides",
                        help="NAME=tokend:TREE | NAME=floor:THREADS[:TREE] | NAME=aio[:TREE] (repeatable; default: "
                             "this checkout and the 32-thread floor)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="NAME:KEY=VALUE",
                        help="an environment variable for one side's server processes (repeatable), e.g. "
                             "B:TOKEND_MAX_WORK_BYTES=0 for an A/B of a setting")  # fmt: skip
    parser.add_argument("--workers", type=int, default=1, help="processes per server (default 1)")
    parser.add_argument("--rates", type=lambda text: [float(rate) for rate in text.split(",")], default=[1500.0],
                        help="offered calls/s, comma-separated (default 1500)")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per run (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default 5)")
    parser.add_argument("--connections", type=int, default=8, help="gRPC connections per side (default 8)")
    parser.add_argument("--deadline", type=float, default=2.0, help="per-call deadline, s (default 2)")
    parser.add_argument("--profile", default=None, help="side to profile with py-spy after the rounds")
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="length of the profiled run (default 10)")
    parser.add_argument("--profile-dir", default="/tmp/tokend-percall", help="where py-spy's folded stacks go")
    parser.add_argument("--json", default=None, help="also write every run to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    sides = args.sides or [Side("this", "tokend", REPO), Side("floor", "floor", REPO, 32)]
    if len({side.name for side in sides}) != len(sides):
        raise SystemExit("--side names must differ")
    for spec in args.env:
        name, _, assignment = spec.partition(":")
        key, _, value = assignment.partition("=")
        matching = [index for index, side in enumerate(sides) if side.name == name]
        if not matching or not key:
            raise SystemExit(f"--env {spec!r}: use NAME:KEY=VALUE with the NAME of a --side")
        side = sides[matching[0]]
        sides[matching[0]] = dataclasses.replace(side, extra_env=(*side.extra_env, (key, value)))
    if args.profile and args.profile not in {side.name for side in sides}:
        raise SystemExit(f"--profile {args.profile}: no such side")
    from bench.service import split_documents

    texts = split_documents("english", size=COUNT_TEXT_BYTES, measure_bytes=2_000_000, warm_bytes=500_000)
    session = Session(sides)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        for side in sides:
            address, pids = stack.enter_context(side.running(args.workers))
            session.addresses[side.name], session.pids[side.name] = address, pids
            print(f"side {side.name}: {side.kind} {side.tree} on {address}, workers {pids}", file=sys.stderr)
        started = time.time()
        asyncio.run(_rounds(args, session, texts))
    print(f"{time.time() - started:.0f} s of runs; load average after: {os.getloadavg()}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps([run.__dict__ for run in session.runs], indent=1))
    print(report(args, session))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
