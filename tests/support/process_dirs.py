"""The test directories whose tests start servers and workers (and measure them, or the machine):
tests/conftest.py runs them one after another on one xdist worker, so they never compete with each other for
the cores or the loopback ports; the other tests (tests/cli's short subprocesses included) run beside them on
both workers.

    from support.process_dirs import PROCESS_TEST_DIRS
"""

PROCESS_TEST_DIRS = ("benchmarks", "client", "deploy", "playground", "reliability", "server")
