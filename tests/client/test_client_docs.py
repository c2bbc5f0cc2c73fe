"""The examples in docs/client.md and client/README.md run as written (pointed at a real server)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _first_python_block(path: Path) -> str:
    match = re.search(r"```python\n(.*?)```", path.read_text(), re.DOTALL)
    assert match, f"no python example in {path}"
    return match.group(1)


@pytest.mark.parametrize("document", ["docs/client.md", "client/README.md"])
def test_the_five_line_example_runs(server, document):
    code = _first_python_block(ROOT / document)
    assert len(code.strip().splitlines()) <= 5
    assert "localhost:50051" in code
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace("localhost:50051", server.target), document, "exec"), {})
    promised = re.search(r"# (.*)$", code.strip().splitlines()[-1]).group(1)
    assert printed.getvalue().strip() == promised


def test_module_docstring_examples_run():
    import doctest

    from tokend_client import _offsets

    result = doctest.testmod(_offsets)
    assert result.attempted > 0 and result.failed == 0
