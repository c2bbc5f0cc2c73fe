"""Every `__builtin_prefetch` of the native sources is in the built object code.

    $ objdump --dwarf=decodedline _native.cpython-311-x86_64-linux-gnu.so   # (file, line) of each instruction
    >>> # a prefetch line of native/*.c or *.h with no instruction in any of tokend's extensions: compiled out

Why a test: GCC (12, -O3) takes a prefetch for no side effect, so a function whose only work is prefetching
is found pure, and a call to it that was not inlined early is then dropped as a pure call whose result is
unused. `tk_prefetch_cached` (the piece cache's slots fetched a batch ahead) compiled to nothing in module.c
that way, silently: the loop stalled on those slots at each cache hit (docs/decisions.md, "The piece cache's
slot prefetch had compiled to nothing"). Such functions are now `TK_PREFETCHING` (always inlined). Nothing
else shows a prefetch missing: the ids are the same either way.

Reads the line table the build's `-g` leaves in the extensions; skipped without objdump, without the sources
beside the package (an installed wheel) or without debug lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

import tokend

_PACKAGE = Path(tokend.__file__).resolve().parent
_SOURCES = _PACKAGE.parent.parent / "native"
_PREFETCH = re.compile(r"^(?!\s*[/*]).*__builtin_prefetch\(")  # a line of code, not of a comment


def _prefetch_lines() -> set[tuple[str, int]]:
    lines = set()
    for source in sorted(_SOURCES.glob("*.[ch]")):
        for number, text in enumerate(source.read_text().splitlines(), 1):
            if _PREFETCH.search(text):
                lines.add((source.name, number))
    return lines


def _compiled_lines() -> set[tuple[str, int]]:
    lines = set()
    for extension in sorted(_PACKAGE.rglob("_*.so")):
        table = subprocess.run(["objdump", "--dwarf=decodedline", str(extension)], capture_output=True, text=True,
                               check=True).stdout
        for row in table.splitlines():
            fields = row.split()  # file name, line number, starting address, ...
            if len(fields) >= 3 and fields[1].isdigit() and fields[2].startswith("0x"):
                lines.add((fields[0], int(fields[1])))
    return lines


@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump is not installed")
@pytest.mark.skipif(not _SOURCES.is_dir(), reason="the native sources are not beside this tokend (an installed wheel)")
def test_every_prefetch_of_the_sources_is_compiled():
    wanted = _prefetch_lines()
    compiled = _compiled_lines()
    if not any(name.endswith(".c") for name, _ in compiled):
        pytest.skip("the extensions were built without debug lines")
    assert len(wanted) >= 10, f"the sources' prefetches were not found ({len(wanted)}): is {_SOURCES} tokend's?"
    missing = sorted(wanted - compiled)
    assert not missing, f"prefetches compiled out (a prefetch-only function not inlined?): {missing}"
