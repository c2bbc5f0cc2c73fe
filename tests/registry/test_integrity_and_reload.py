"""Checksums are enforced (a tampered version is refused, the others keep serving) and a running
registry picks up new versions, alias moves and removals by polling."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from tokend.errors import ChecksumMismatchError, ModelNotFoundError
from tokend.registry import Registry

from .trained_models import publish_trained


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # stays a valid-looking file; only the checksum can tell
    path.write_bytes(bytes(data))


def _wait_until(condition, *, seconds: float = 20.0):
    """Bounded wait for something the poller does in the background (not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached within the bound")


@pytest.fixture
def two_models(registry, trained_small, alice_text):
    from tokend.engine import train

    publish_trained(registry, "good", trained_small, version=1)
    publish_trained(registry, "victim", train(alice_text[:20_000], 300), version=1)
    return registry


def test_a_tampered_payload_is_refused_and_other_models_still_serve(two_models, registry_dir):
    _flip_last_byte(registry_dir / "victim" / "1" / "merges.model")
    fresh = Registry.open(registry_dir)
    with pytest.raises(ChecksumMismatchError) as refused:
        fresh.load("victim")
    assert "victim@1" in str(refused.value) and refused.value.what.startswith("payload merges.model of victim@1")
    with pytest.raises(ChecksumMismatchError):  # remembered: refused again without re-reading
        fresh.load("victim@1")
    assert fresh.get_encoding("good").encode("Alice") == two_models.get_encoding("good").encode("Alice")
    results = {result.ref: result for result in fresh.verify()}
    assert results["good@1"].ok
    assert not results["victim@1"].ok and "SHA-256 mismatch" in results["victim@1"].error


def test_a_manifest_edited_in_place_is_refused(two_models, registry_dir):
    # A special-token id is not in a tiktoken payload: only the manifest digest in the index protects it.
    path = registry_dir / "victim" / "1" / "manifest.json"
    document = json.loads(path.read_text())
    document["description"] = "edited by hand"
    path.write_text(json.dumps(document, indent=2))
    fresh = Registry.open(registry_dir)
    with pytest.raises(ChecksumMismatchError, match="manifest of victim@1"):
        fresh.load("victim")
    assert not {result.ref: result.ok for result in fresh.verify()}["victim@1"]
    assert fresh.load("good").version == 1


def test_corruption_of_a_loaded_version_is_reported_on_refresh_while_its_verified_copy_keeps_serving(two_models, registry_dir, caplog):
    held = two_models.load("victim")  # verified when loaded; an in-flight request holds it
    two_models.load("good")
    _flip_last_byte(registry_dir / "victim" / "1" / "merges.model")
    with caplog.at_level("ERROR", logger="tokend.registry.registry"):
        report = two_models.refresh()
    assert list(report.damaged) == ["victim@1"] and "SHA-256 mismatch" in report.damaged["victim@1"]
    assert report.failed == {} and report.removed == []
    assert any("victim@1" in record.getMessage() and "no longer verifies" in record.getMessage() for record in caplog.records)
    # A registry fault never takes a verified, loaded model down: the same object keeps answering.
    assert two_models.load("victim") is held and two_models.load("victim@1") is held
    assert two_models.get_encoding("victim").encode("Alice") == held.encoding.encode("Alice")
    assert two_models.manifest("victim@1") == held.manifest
    assert {result.ref: result.ok for result in two_models.verify()} == {"good@1": True, "victim@1": False}
    assert [model.ref for model in two_models.loaded_models()] == ["good@1", "victim@1"]
    # A process that never loaded it refuses it (it has no verified copy).
    with pytest.raises(ChecksumMismatchError, match="victim@1"):
        Registry.open(registry_dir).load("victim")
    # Repaired on disk: the next refresh reports nothing.
    _flip_last_byte(registry_dir / "victim" / "1" / "merges.model")
    assert two_models.refresh().damaged == {}


def test_a_manifest_changed_under_a_loaded_version_is_reported_not_served(two_models, registry_dir):
    held = two_models.load("victim")
    path = registry_dir / "victim" / "1" / "manifest.json"
    path.write_text(path.read_text().replace('"description": ""', '"description": "edited"'))
    report = two_models.refresh()
    assert "manifest of victim@1" in report.damaged["victim@1"]
    assert two_models.load("victim") is held and two_models.manifest("victim").description == ""


def test_a_vanished_version_is_dropped_on_refresh_while_in_flight_work_finishes(two_models, registry_dir, trained_small):
    publish_trained(two_models, "good", trained_small, version=2)
    held = two_models.load("good@2")
    shutil.rmtree(registry_dir / "good" / "2")
    report = two_models.refresh()
    assert report.removed == ["good@2"]
    assert held.encoding.decode(held.encoding.encode("in flight")) == "in flight"
    with pytest.raises(ModelNotFoundError) as gone:
        two_models.load("good@2")
    assert gone.value.available == ["good@1"]
    assert two_models.resolve("good") == ("good", 1)


def test_a_running_registry_picks_up_new_versions_and_alias_moves_by_polling(registry_dir, trained_small):
    writer = Registry.open(registry_dir, create=True)
    publish_trained(writer, "m", trained_small, version=1)
    writer.set_alias("m", "stable", 1)

    reader = Registry.open(registry_dir)  # e.g. a server process
    reports = []
    reader.start_polling(0.05, on_report=reports.append)
    try:
        assert reader.resolve("m@stable") == ("m", 1)
        before = reader.load("m@stable")
        publish_trained(writer, "m", trained_small, version=2)
        writer.set_alias("m", "stable", 2)
        _wait_until(lambda: reader.resolve("m@stable") == ("m", 2))
        assert reader.resolve("m") == ("m", 2)
        assert reader.load("m@stable").version == 2
        assert before.version == 1 and before.encoding.encode("Alice") == reader.get_encoding("m@2").encode("Alice")
        # The references switch as soon as m@2 has loaded, inside a refresh; its report comes at the end.
        _wait_until(lambda: any("m@2" in report.added for report in reports))
        _wait_until(lambda: any(str(move) == "m@stable: 1 -> 2" for report in reports for move in report.alias_moves))
    finally:
        reader.stop_polling()


def test_refresh_never_raises_when_the_source_disappears(two_models, registry_dir, tmp_path):
    two_models.load("good")
    moved = tmp_path / "elsewhere"
    registry_dir.rename(moved)
    report = two_models.refresh()
    assert report.error is not None and "cannot read registry directory" in report.error
    assert two_models.load("good").version == 1  # the previous catalog and loaded models stay in force
    moved.rename(registry_dir)
    assert two_models.refresh().error is None


def test_loads_stay_consistent_while_aliases_move_and_refreshes_run(registry, registry_dir, trained_small, alice_text):
    from tokend.engine import train

    publish_trained(registry, "m", trained_small, version=1)
    publish_trained(registry, "m", train(alice_text[:20_000], 300), version=2)
    registry.set_alias("m", "stable", 1)
    reader = Registry.open(registry_dir)
    expected = {1: registry.get_encoding("m@1").encode("Alice"), 2: registry.get_encoding("m@2").encode("Alice")}
    errors, seen = [], set()
    stop = threading.Event()

    def serve_requests():
        while not stop.is_set():
            try:
                loaded = reader.load("m@stable")
                assert loaded.encoding.encode("Alice") == expected[loaded.version]
                seen.add(loaded.version)
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)
                return
            # Yield the GIL between requests: three spinning readers starved the alias mover (64 s in CI).
            stop.wait(0.0005)

    threads = [threading.Thread(target=serve_requests) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(30):
            registry.set_alias("m", "stable", 2 if round_number % 2 == 0 else 1)
            reader.refresh()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert seen == {1, 2}
    assert [model.ref for model in reader.loaded_models()] == ["m@1", "m@2"]  # each loaded once, kept
