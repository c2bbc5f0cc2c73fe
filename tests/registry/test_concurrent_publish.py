"""Concurrent publishes of one version, by separate processes and by threads: exactly one content wins,
the losers get VersionConflictError (or succeed idempotently when their content is identical), and no
torn or partial file is ever left behind."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from tokend.engine import train
from tokend.errors import VersionConflictError
from tokend.registry import Registry, describe_payload

from .trained_models import minbpe_payload

CONTENDERS = 6


@pytest.fixture(scope="module")
def distinct_versions(alice_text):
    """CONTENDERS prepared publications of `race@1`, each with different content (different vocab sizes)."""
    prepared = []
    for index in range(CONTENDERS):
        result = train(alice_text[:10_000], 260 + index)
        prepared.append(
            describe_payload(name="race", version=1, payload_format="minbpe_model", stored=minbpe_payload(result),
                             provenance={"kind": "trained"})
        )
    return prepared


def _publish_in_child(root: str, new, barrier, results) -> None:
    registry = Registry.open(root)
    barrier.wait(timeout=30)
    try:
        manifest = registry.publish_version(new)
        results.put(("won", manifest.payload.sha256))
    except VersionConflictError as error:
        results.put(("conflict", str(error)))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(("error", f"{type(error).__name__}: {error}"))


def _assert_one_intact_version(root: Path, winner_sha256: str) -> None:
    registry = Registry.open(root)
    assert [result.ok for result in registry.verify()] == [True]
    assert registry.manifest("race@1").payload.sha256 == winner_sha256
    assert sorted(path.name for path in (root / "race" / "1").iterdir()) == ["manifest.json", "merges.model"]
    leftovers = [path.name for path in (root / ".staging").iterdir() if path.name != "lock"]
    assert leftovers == []
    registry.load("race@1")  # the winner's payload loads


def test_concurrent_processes_publishing_one_version_exactly_one_wins(tmp_path, distinct_versions):
    root = tmp_path / "registry"
    Registry.open(root, create=True)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(CONTENDERS)
    results = context.Queue()
    processes = [
        context.Process(target=_publish_in_child, args=(str(root), new, barrier, results)) for new in distinct_versions
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(30)
        assert process.exitcode == 0
    assert [kind for kind, _ in outcomes if kind == "error"] == [], outcomes
    winners = [detail for kind, detail in outcomes if kind == "won"]
    assert len(winners) == 1, outcomes
    assert sum(kind == "conflict" for kind, _ in outcomes) == CONTENDERS - 1
    _assert_one_intact_version(root, winners[0])


def test_concurrent_threads_publishing_identical_content_all_succeed_with_one_copy(tmp_path, distinct_versions):
    root = tmp_path / "registry"
    registry = Registry.open(root, create=True)
    barrier = threading.Barrier(CONTENDERS)
    manifests, errors = [], []

    def publish():
        barrier.wait(timeout=30)
        try:
            manifests.append(registry.publish_version(distinct_versions[0]))
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=publish) for _ in range(CONTENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(manifests) == CONTENDERS
    assert all(manifest == manifests[0] for manifest in manifests)
    _assert_one_intact_version(root, distinct_versions[0].manifest.payload.sha256)
