"""The archives the suite prefetches (support/package_files.py) are the versions its tests pin, so a version
bump does not leave a 77 MB download nobody reads."""

from __future__ import annotations

from pathlib import Path

from support.package_files import _PREFETCH

TESTS = Path(__file__).parent


def test_every_prefetched_archive_is_one_the_tests_read() -> None:
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in TESTS.rglob("*.py") if path.name not in {"package_files.py", "test_prefetch.py"}
    )
    for (name, version, _), _ in _PREFETCH:
        assert f'"{name}", "{version}"' in sources, f"{name}=={version} is prefetched but no test pins it"
