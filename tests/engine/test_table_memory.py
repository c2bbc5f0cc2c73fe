"""The rank table lives on transparent huge pages where the kernel offers them (native/table_memory.c).

    >>> core = BpeCore(ranks, "cl100k")   # slots, 2-byte table, filter, records: one ~5 MiB block
    >>> # /proc/self/smaps: AnonHugePages grows by that block, when THP is "madvise" or "always"

The tables are probed at random per piece; on 4 KiB pages each probe may also miss the TLB. What the kernel
grants is what this checks: the process's AnonHugePages grows by at least one huge page when a core is built.
Exactness of the lookups through this memory is every other engine test's job.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import tokend
from tokend.engine._native import BpeCore

_THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _anon_huge_kb() -> int:
    return sum(int(line.split()[1]) for line in Path("/proc/self/smaps").read_text().splitlines()
               if line.startswith("AnonHugePages:"))


def _thp_policy() -> str:
    text = _THP.read_text() if _THP.exists() else ""
    return text[text.index("[") + 1:text.index("]")] if "[" in text else "unavailable"


@pytest.mark.skipif(_thp_policy() not in ("madvise", "always"),
                    reason=f"transparent huge pages are {_thp_policy()!r} on this kernel: 4 KiB pages only")
def test_a_core_puts_its_rank_table_on_huge_pages():
    ranks = dict(tokend.get_encoding("cl100k_base")._mergeable_ranks)
    before = _anon_huge_kb()
    core = BpeCore(ranks, "cl100k")  # noqa: F841  (kept alive while smaps is read)
    grown = _anon_huge_kb() - before
    assert grown >= 2048, f"AnonHugePages grew by {grown} kB for a ~5 MiB rank table"
    assert core.encode(" hello world") == tokend.get_encoding("cl100k_base").encode(" hello world")
