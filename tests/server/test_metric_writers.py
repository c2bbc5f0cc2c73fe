"""The metric writers a worker uses on every call (server/metric_writers.py) leave exactly the samples that the
children's own ``inc`` / ``dec`` / ``observe`` leave, in memory and in prometheus_client's multiprocess files
(what the supervisor's /metrics sums); a child without the attributes they use gets its own methods."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from tokend.server.metric_writers import adder, observer, subtracter
from tokend.server.metrics import ServerMetrics

# On, between and past the bounds: 0.001 is a bound (its bucket is "le=0.001"), 31.0 is past the last finite one.
SECONDS = (0.0, 0.0004, 0.0005, 0.00050001, 0.001, 0.0123, 2.5, 29.999, 30.0, 31.0, 1e9)
ITEMS = (1, 2, 3, 1024, 4096, 4097, 100_000)


def _write(metrics: ServerMetrics, fast: bool) -> None:
    labels = ("unary", "tokend.v1.Tokenizer", "CountTokens")
    started, handled = metrics.started.labels(*labels), metrics.handled.labels(*labels, "OK")
    in_flight = metrics.in_flight.labels("CountTokens")
    seconds, items = metrics.handling_seconds.labels(*labels), metrics.batch_items.labels("CountTokens")
    tokens = metrics.tokens.labels("cl100k_base", "1", "count")
    if fast:
        add_started, add_handled, enter, leave = adder(started), adder(handled), adder(in_flight), subtracter(in_flight)
        observe_seconds, observe_items, add_tokens = observer(seconds), observer(items), adder(tokens)
    else:
        add_started, add_handled, enter, leave = started.inc, handled.inc, in_flight.inc, in_flight.dec
        observe_seconds, observe_items, add_tokens = seconds.observe, items.observe, tokens.inc
    for index, amount in enumerate(SECONDS):
        add_started(1)
        enter(1)
        observe_seconds(amount)
        observe_items(ITEMS[index % len(ITEMS)])
        add_tokens(index * 7)
        if index % 3:
            leave()
        add_handled(1)


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")  # the moment the child was made
    }


def test_writers_leave_the_samples_the_childrens_methods_leave():
    public, fast = CollectorRegistry(), CollectorRegistry()
    _write(ServerMetrics(public), fast=False)
    _write(ServerMetrics(fast), fast=True)
    expected = _samples(public)
    assert expected[f"grpc_server_handling_seconds_bucket{sorted({'grpc_type': 'unary', 'grpc_service': 'tokend.v1.Tokenizer', 'grpc_method': 'CountTokens', 'le': '0.001'}.items())}"] == 5.0
    assert _samples(fast) == expected


_MULTIPROCESS = textwrap.dedent('''
    import json, os, sys
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    from tokend.server.metrics import ServerMetrics, write_values_under_cached_pid
    sys.path.insert(0, os.environ["TEST_DIR"])
    from test_metric_writers import _samples, _write
    write_values_under_cached_pid()  # as a worker does
    _write(ServerMetrics(CollectorRegistry()), fast=sys.argv[1] == "fast")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, os.environ["PROMETHEUS_MULTIPROC_DIR"])
    print(json.dumps(_samples(registry)))
''')


def test_writers_leave_the_same_multiprocess_files(tmp_path):
    results = {}
    for way in ("public", "fast"):
        directory = tmp_path / way
        directory.mkdir()
        env = {"PROMETHEUS_MULTIPROC_DIR": str(directory), "PYTHONPATH": ":".join(sys.path),
               "TEST_DIR": str(Path(__file__).parent)}  # fmt: skip
        done = subprocess.run([sys.executable, "-c", _MULTIPROCESS, way], env=env, capture_output=True, text=True,
                              timeout=60)  # fmt: skip
        assert done.returncode == 0, done.stderr
        results[way] = json.loads(done.stdout)
    assert results["public"]["tokend_rpc_in_flight[('grpc_method', 'CountTokens')]"] == 4.0  # livesum of 11 - 7
    assert results["fast"] == results["public"]


class _Child:
    """A child without prometheus_client's attributes: the writers must use its own methods."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def inc(self, amount: float = 1) -> None:
        self.calls.append(("inc", amount))

    def dec(self, amount: float = 1) -> None:
        self.calls.append(("dec", amount))

    def observe(self, amount: float) -> None:
        self.calls.append(("observe", amount))


@pytest.mark.parametrize("make", [adder, subtracter, observer])
def test_a_child_without_the_attributes_gets_its_own_methods(make):
    child = _Child()
    writer = make(child)
    writer() if make is subtracter else writer(2)
    assert child.calls == [{adder: ("inc", 2), subtracter: ("dec", 1), observer: ("observe", 2)}[make]]

