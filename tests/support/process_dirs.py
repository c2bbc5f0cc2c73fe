"""The test directories whose tests start servers, workers or other processes (and measure them, or the
machine): tests/conftest.py runs them one after another on one xdist worker, so they never compete with each
other for the cores or the loopback ports; in-process tests take the other worker.

    from support.process_dirs import PROCESS_TEST_DIRS
"""

PROCESS_TEST_DIRS = ("benchmarks", "client", "deploy", "playground", "reliability", "server")
