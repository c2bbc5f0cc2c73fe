"""A benchmark's section of a shared report page, between `<!-- name -->` and `<!-- /name -->`: rewritten in place,
or appended when the page has none yet, so several benchmarks share docs/bench-engine.md.

    >>> import tempfile, pathlib
    >>> page = pathlib.Path(tempfile.mkdtemp()) / "report.md"
    >>> write_section(page, "demo", "<!-- demo -->\\nfirst\\n<!-- /demo -->")
    >>> write_section(page, "demo", "<!-- demo -->\\nsecond\\n<!-- /demo -->")
    >>> page.read_text()
    '\\n\\n<!-- demo -->\\nsecond\\n<!-- /demo -->\\n'
"""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: str | Path, name: str, section: str) -> None:
    """Put `section` (which carries its own markers) in place of the page's `name` section, or at its end."""
    path = Path(path)
    marked = re.compile(rf"<!-- {re.escape(name)} -->.*<!-- /{re.escape(name)} -->", re.S)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    text = marked.sub(lambda _: section, text) if marked.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
