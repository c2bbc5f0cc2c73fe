"""CPU time a server's worker processes spend per call: their CPU seconds (``/proc/<pid>/stat``, user +
system, every thread) over a known number of calls, divided by the calls.

    before = process_cpu_seconds(pids)
    ... send exactly N calls, every one answered ...
    per_call = (process_cpu_seconds(pids) - before) / N

Why CPU and not latency: on a machine whose cores the load generator shares, latency at a fixed rate
mostly measures the machine; CPU per call is what the server itself costs, and it bounds the calls/s two
workers can reach (2 cores / CPU per call). Idle work (the worker's 1 s wait loop, gRPC's pollers) is in
the figure too: keep the run busy (thousands of calls per second) so it is noise.

Not handled: processes other than Linux ones (no ``/proc``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["process_cpu_seconds", "process_cpu_split", "process_tree"]

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds of the processes ``pids`` so far (every thread; children not included)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # Fields after the command name, which is in parentheses and may contain spaces.
            fields = stat.read().rsplit(b")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / _TICKS


def process_cpu_split(pids: Iterable[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of the processes ``pids`` so far."""
    user = system = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        user += int(fields[11])
        system += int(fields[12])
    return user / _TICKS, system / _TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants alive now (from ``/proc/<pid>/task/*/children``)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending += [int(child) for child in children.read().split()]
            except FileNotFoundError:
                pass
    return found
