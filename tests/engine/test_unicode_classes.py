"""The native pre-splitter's character tables (service/native/unicode_classes.h) are generated from the
`regex` module; a header that no longer matches the installed `regex` fails here.

    python service/native/generate_unicode_classes.py --check   # exit 1 when stale; without --check, rewrite

(Whether the scanner uses the tables correctly is test_native_split.py's job.)
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
GENERATOR = REPO / "service" / "native" / "generate_unicode_classes.py"


def test_unicode_classes_header_is_current():
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nrun: python {GENERATOR.relative_to(REPO)}"
