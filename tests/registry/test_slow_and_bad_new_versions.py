"""A new version that loads slowly or fails never takes `name` / `name@alias` from a version that verified.

Real HTTP registries on 127.0.0.1 (tests/support/slow_http.py) whose new payload trickles at one byte per
0.2 s — each read well inside any per-read timeout — or was tampered with. Required: the moving reference
keeps serving the loaded version until the new one has loaded and verified; a load gives up at its
deadline; callers wait a bounded time and only a bounded number of them wait at all.
"""

from __future__ import annotations

import threading
import time

import pytest
from support.slow_http import TricklingServer

from tokend.errors import ChecksumMismatchError, ModelLoadingError, RegistryError
from tokend.registry import Registry
from tokend.registry.http_source import HttpSource

from .trained_models import publish_trained

LOAD_TIMEOUT = 4.0  # the remote registries' load deadline in these tests (default: 60 s)


@pytest.fixture
def origin(registry, trained_small):
    publish_trained(registry, "good", trained_small, version=1)
    registry.set_alias("good", "stable", 1)
    return registry


@pytest.fixture
def second_version(alice_text):
    from tokend.engine import train

    return train(alice_text[:20_000], 300)


@pytest.fixture
def server(registry_dir):
    with TricklingServer(registry_dir, byte_interval=0.2) as started:
        yield started


def _elapsed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_a_trickling_new_version_never_takes_latest_and_its_load_ends_at_the_deadline(
    origin, server, second_version, tmp_path
):
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache", load_timeout=LOAD_TIMEOUT)
    serving = remote.load("good")
    assert remote.load("good@stable") is serving
    publish_trained(origin, "good", second_version, version=2)
    origin.set_alias("good", "stable", 2)
    server.slow("good/2/merges.model")

    started = time.monotonic()
    report = remote.refresh()
    refresh_seconds = time.monotonic() - started
    assert report.added == ["good@2"] and report.loading == ["good@2"]
    assert refresh_seconds < 5, refresh_seconds  # it waits for the switch at most ~2 s, never for the load
    # Both moving references keep the verified version, at once, while good@2 trickles in.
    assert remote.resolve("good") == ("good", 1) and remote.resolve("good@stable") == ("good", 1)
    assert _elapsed(lambda: remote.load("good")) < 0.5 and remote.load("good") is serving
    assert remote.load("good@stable") is serving
    # A caller that asks for good@2 itself waits as long as it said, then is told to retry.
    started = time.monotonic()
    with pytest.raises(ModelLoadingError, match=r"good@2 is still loading"):
        remote.load("good@2", wait=0.3)
    assert time.monotonic() - started < 1.5
    # The load has an overall deadline (not a per-read timeout, which a trickle never trips).
    with pytest.raises(RegistryError, match=r"still receiving when the load's deadline passed"):
        remote.load("good@2")
    assert time.monotonic() - started < LOAD_TIMEOUT + 3
    assert remote.load("good") is serving and remote.resolve("good@stable") == ("good", 1)

    # The mirror recovers: the next refresh tries again, and only then do the references switch.
    server.release()
    report = remote.refresh()
    assert report.loading == [] and report.failed == {}
    assert remote.resolve("good") == ("good", 2) and remote.resolve("good@stable") == ("good", 2)
    text = "`Off with her head!' the Queen shouted"
    assert remote.get_encoding("good").encode(text) == second_version.encoding.encode(text)
    assert serving.encoding.encode(text) == origin.get_encoding("good@1").encode(text)  # held copies still work


def test_callers_wait_for_a_slow_load_a_bounded_time_and_only_a_few_at_once(origin, server, second_version, tmp_path):
    publish_trained(origin, "good", second_version, version=2)
    server.slow("good/2/merges.model")
    remote = Registry(HttpSource(server.url, cache_dir=tmp_path / "cache", load_timeout=30), load_timeout=30)
    loaded = remote.load("good@1")
    outcomes: list[tuple[str, float]] = []
    lock = threading.Lock()

    def ask() -> None:
        started = time.monotonic()
        try:
            remote.load("good@2", wait=3.0)
            outcome = "loaded"
        except ModelLoadingError as error:
            outcome = "busy" if "calls already wait" in str(error) else "timed out"
        with lock:
            outcomes.append((outcome, time.monotonic() - started))

    callers = [threading.Thread(target=ask) for _ in range(12)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(10)
    kinds = sorted(outcome for outcome, _ in outcomes)
    # Two (the default bound) waited their 3 s; the other ten were turned away at once.
    assert kinds == ["busy"] * 10 + ["timed out"] * 2, outcomes
    assert all(seconds < 2 for outcome, seconds in outcomes if outcome == "busy"), outcomes
    assert all(2.9 < seconds < 6 for outcome, seconds in outcomes if outcome == "timed out"), outcomes
    assert server.trickles_started == 1  # one load in flight for all twelve callers
    assert _elapsed(lambda: remote.load("good@1")) < 0.5 and remote.load("good@1") is loaded
    server.release()
    assert remote.load("good@2").version == 2  # the load in flight finishes; nobody started another


def test_a_tampered_new_version_on_an_http_registry_never_takes_latest(origin, server, second_version, tmp_path):
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    serving = remote.load("good")
    publish_trained(origin, "good", second_version, version=2)
    payload = origin.source.root / "good" / "2" / "merges.model"
    payload.write_bytes(payload.read_bytes().replace(b"\n2", b"\n3", 1))  # index and manifest untouched

    report = remote.refresh()
    assert list(report.failed) == ["good@2"] and "SHA-256 mismatch" in report.failed["good@2"]
    assert remote.resolve("good") == ("good", 1) and remote.load("good") is serving
    with pytest.raises(ChecksumMismatchError, match="good@2"):
        remote.load("good@2")
    assert {result.ref: result.ok for result in remote.verify()} == {"good@1": True, "good@2": False}

    # A process that starts now (a restarted worker) falls back to the newest version that verifies.
    fresh = Registry.open(server.url, cache_dir=tmp_path / "cache2")
    assert fresh.load("good").version == 1
    assert fresh.resolve("good") == ("good", 1)
    with pytest.raises(ChecksumMismatchError, match="good@2"):
        fresh.load("good@2")
    # An alias pointing at the bad version has nothing verified to fall back on: it says why.
    origin.set_alias("good", "stable", 2)
    fresh.refresh()
    with pytest.raises(ChecksumMismatchError, match="good@2"):
        fresh.load("good@stable")
