"""The test directories whose tests start servers and workers (and measure them, or the machine):
tests/conftest.py runs them one after another on one xdist worker, so they never compete with each other for
the cores or the loopback ports; the other tests (tests/cli's short subprocesses included) run beside them on
both workers.

    from support.process_dirs import is_process_test
    is_process_test(item.path)   # True for tests/server/test_lifecycle.py
"""

from pathlib import Path

PROCESS_TEST_DIRS = ("benchmarks", "client", "deploy", "playground", "reliability", "server")
_TESTS = Path(__file__).resolve().parents[1]


def is_process_test(path: Path) -> bool:
    """Whether the test file at ``path`` is under one of the process directories of tests/."""
    parts = path.relative_to(_TESTS).parts if path.is_relative_to(_TESTS) else ()
    return bool(parts) and parts[0] in PROCESS_TEST_DIRS
