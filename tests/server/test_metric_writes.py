"""A worker's metric writes (prometheus_client multiprocess mode) tell their process without a system call,
and still notice a fork.

prometheus_client calls ``os.getpid()`` on every write of a value, to notice a fork; a CountTokens call writes
eleven, and under load those calls were 7.6% of the time the worker held the GIL (issue 18; docs/decisions.md,
"CPU per CountTokens call"). ``write_values_under_cached_pid`` reads the pid once and after each fork.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent('''
    import os, sys
    real_getpid, asked = os.getpid, [0]
    def counting_getpid():
        asked[0] += 1
        return real_getpid()
    os.getpid = counting_getpid  # before prometheus_client binds it as its default process identifier
    from prometheus_client import CollectorRegistry, values
    from prometheus_client.multiprocess import MultiProcessCollector
    from tokend.server.metrics import ServerMetrics, write_values_under_cached_pid
    assert write_values_under_cached_pid() and write_values_under_cached_pid()  # a second call changes nothing
    metrics = ServerMetrics(CollectorRegistry())
    tokens = metrics.tokens.labels("cl100k_base", "2", "count")
    seconds = metrics.handling_seconds.labels("unary", "tokend.v1.Tokenizer", "CountTokens")
    asked[0] = 0
    for _ in range(1000):
        tokens.inc(3)
        seconds.observe(0.0004)
    writes_asked = asked[0]
    child = os.fork()
    if child == 0:
        tokens.inc(5)  # the child's own file, as with os.getpid()
        os._exit(0)
    os.waitpid(child, 0)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    total = registry.get_sample_value("tokend_tokens_total", {"model": "cl100k_base", "version": "2", "operation": "count"})
    files = sorted(name for name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]) if name.startswith("counter_"))
    print(writes_asked, total, files == sorted([f"counter_{real_getpid()}.db", f"counter_{child}.db"]))
''')


def test_metric_writes_ask_no_pid_and_a_fork_writes_its_own_file(tmp_path):
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": ":".join(sys.path)}
    done = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    asked, total, own_files = done.stdout.split()
    assert (int(asked), float(total), own_files) == (0, 3005.0, "True")
