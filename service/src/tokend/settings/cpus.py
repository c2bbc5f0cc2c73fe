"""How many CPUs this process may use: the default number of workers.

Counts the CPUs in the scheduler affinity mask and caps that by the CPU quota of the process's
cgroup (v2 ``cpu.max``; v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up, because in a
container ``os.cpu_count()`` reports the host's CPUs while the quota decides how many can run.

Not handled: cgroup v1 ``cpu.shares`` (a relative weight, not a limit), and CPU quotas that change
after start.

    >>> available_cpus() >= 1
    True
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["available_cpus", "cgroup_cpu_limit"]


def available_cpus(*, cgroup_root: Path = Path("/sys/fs/cgroup"), proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs available to this process: affinity mask capped by the cgroup quota, at least 1."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root=cgroup_root, proc_self_cgroup=proc_self_cgroup)
    if limit is not None:
        cpus = min(cpus, limit)
    return max(1, cpus)


def cgroup_cpu_limit(*, cgroup_root: Path = Path("/sys/fs/cgroup"), proc_self_cgroup: Path = Path("/proc/self/cgroup")) -> int | None:
    """The cgroup CPU quota in whole CPUs (rounded up), or None when there is no quota.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "cpu.max").write_text("150000 100000\\n")
    >>> cgroup_cpu_limit(cgroup_root=root, proc_self_cgroup=root / "missing")
    2
    """
    for directory in _cgroup_dirs(cgroup_root, proc_self_cgroup):
        limit = _read_v2(directory / "cpu.max")
        if limit is None:
            limit = _read_v1(directory / "cpu" / "cpu.cfs_quota_us", directory / "cpu" / "cpu.cfs_period_us")
        if limit is None:
            limit = _read_v1(directory / "cpu.cfs_quota_us", directory / "cpu.cfs_period_us")
        if limit is not None:
            return limit
    return None


def _cgroup_dirs(cgroup_root: Path, proc_self_cgroup: Path) -> list[Path]:
    # The process's own cgroup first (cgroup v2 "0::/path"), then the mount root, which is what a
    # container with a private cgroup namespace sees.
    dirs: list[Path] = []
    try:
        for line in proc_self_cgroup.read_text().splitlines():
            hierarchy, _, path = line.split(":", 2)
            if hierarchy == "0" and path not in ("", "/"):
                dirs.append(cgroup_root / path.lstrip("/"))
    except (OSError, ValueError):
        pass
    dirs.append(cgroup_root)
    return dirs


def _read_v2(cpu_max: Path) -> int | None:
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def _read_v1(quota_file: Path, period_file: Path) -> int | None:
    try:
        quota = int(quota_file.read_text().strip())
        period = int(period_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:  # -1 = no quota
        return None
    return max(1, math.ceil(quota / period))
