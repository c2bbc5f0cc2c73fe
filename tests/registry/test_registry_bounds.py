"""Registry files that are bombs or lies cost bounded memory and time, once; a broken index is never ignored.

Versions are written by hand here (manifest + payload with consistent hashes, then the index rebuilt),
which is what a hostile or broken registry looks like: `Registry.publish` would refuse them. Memory is
measured with tracemalloc (every bytes object the registry allocates, in every thread).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

import tokend.registry.payload as payload_module
from tokend.engine import GPT4_PATTERN, dump_tiktoken_ranks
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry import DirectorySource, Registry
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.manifest import PayloadFile, build_manifest, utc_now
from tokend.registry.size_limits import MAX_PAYLOAD_BYTES

from .trained_models import publish_trained

MiB = 1024 * 1024
BOMB_CONTENT_BYTES = 256 * MiB  # 4x the global cap (the bomb was 1.5 GiB; the bound is the same)


def _bomb() -> tuple[bytes, str]:
    """A gzip payload of BOMB_CONTENT_BYTES zero bytes (~260 KB stored) and the SHA-256 of its content."""
    block = b"\0" * (16 * MiB)
    member = gzip.compress(block, compresslevel=9)
    content_hash = hashlib.sha256()
    for _ in range(BOMB_CONTENT_BYTES // len(block)):
        content_hash.update(block)
    return member * (BOMB_CONTENT_BYTES // len(block)), content_hash.hexdigest()


def _write_version(root: Path, name: str, version: int, stored: bytes, **payload_fields) -> None:
    """A tiktoken_ranks version written by hand, with hashes that match what is stored; index rebuilt."""
    file_name = "ranks.tiktoken.gz" if payload_fields.get("compression") == "gzip" else "ranks.tiktoken"
    manifest = build_manifest(
        format_version=1, name=name, version=version, payload_format="tiktoken_ranks",
        payload=PayloadFile(path=file_name, size=len(stored), sha256=sha256_hex(stored), **payload_fields),
        pattern=GPT4_PATTERN, special_tokens={}, n_vocab=256, created_at=utc_now(),
        provenance={"kind": "imported", "source": "written by hand for a test"},
    )  # fmt: skip
    directory = root / name / str(version)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        stale.unlink()
    (directory / file_name).write_bytes(stored)
    (directory / "manifest.json").write_bytes(manifest.to_json_bytes())
    DirectorySource(root).write_index()


def _peak_bytes_of(call) -> tuple[int, float, BaseException | None]:
    """(peak traced allocation in bytes, seconds, the exception raised) while running `call`."""
    tracemalloc.start()
    started = time.monotonic()
    raised = None
    try:
        call()
    except Exception as error:  # noqa: BLE001 - returned for the assertions
        raised = error
    seconds = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, seconds, raised


@pytest.fixture
def good(registry, trained_small):
    publish_trained(registry, "good", trained_small, version=1)
    return registry


@pytest.mark.parametrize("declared_content_size", [None, 2_092], ids=["no-content-size", "content-size-2092"])
def test_a_gzip_bomb_is_refused_within_the_cap_once_not_at_every_reload(good, registry_dir, monkeypatch, declared_content_size):
    stored, content_sha256 = _bomb()
    fields = {"compression": "gzip", "content_sha256": content_sha256}
    if declared_content_size is not None:
        fields["content_size"] = declared_content_size
    _write_version(registry_dir, "bomb", 1, stored, **fields)
    inflations = []
    real_gunzip = payload_module.gunzip_at_most
    monkeypatch.setattr(payload_module, "gunzip_at_most", lambda *a, **k: inflations.append(1) or real_gunzip(*a, **k))
    reader = Registry.open(registry_dir)

    peak, seconds, raised = _peak_bytes_of(lambda: reader.load("bomb"))
    limit = declared_content_size if declared_content_size is not None else MAX_PAYLOAD_BYTES
    assert isinstance(raised, ModelFormatError), raised
    assert f"inflates to more than {limit:,} bytes" in str(raised) and "bomb@1" in str(raised)
    assert peak < limit + 16 * MiB, f"peak {peak / MiB:.0f} MiB"  # the content, one chunk, the stored file
    assert seconds < 10, seconds  # measured ~0.1 s (inflating 64 MiB of zeros)

    # Known bad by its manifest digest: reloads and requests do not inflate it again.
    for _ in range(3):
        assert reader.refresh().error is None
        with pytest.raises(ModelFormatError, match="inflates to more than"):
            reader.load("bomb@1")
    assert len(inflations) == 1
    assert reader.get_encoding("good").encode("Alice") == good.get_encoding("good").encode("Alice")
    assert [(result.ref, result.ok) for result in reader.verify()] == [("bomb@1", False), ("good@1", True)]
    assert len(inflations) == 2  # verify() checks everything again, within the same bound

    # Fixed (a different manifest under the same version, index rebuilt): picked up at the next refresh.
    ranks = dump_tiktoken_ranks({bytes([b]): b for b in range(256)})
    _write_version(registry_dir, "bomb", 1, gzip.compress(ranks), compression="gzip",
                   content_sha256=sha256_hex(ranks), content_size=len(ranks))  # fmt: skip
    reader.refresh()
    assert reader.get_encoding("bomb").encode("ab") == [97, 98]
    assert len(inflations) == 3


def test_publishing_records_the_content_size_that_bounds_inflating(registry, trained_small):
    ranks = dump_tiktoken_ranks(trained_small.encoding.mergeable_ranks)
    gz = registry.publish("z", payload=gzip.compress(ranks), payload_format="tiktoken_ranks", compression="gzip",
                          pattern=GPT4_PATTERN, provenance={"kind": "imported"})  # fmt: skip
    plain = registry.publish("p", payload=ranks, payload_format="tiktoken_ranks", pattern=GPT4_PATTERN,
                             provenance={"kind": "imported"})  # fmt: skip
    assert gz.payload.content_size == len(ranks)
    assert plain.payload.content_size is None and b"content_size" not in plain.to_json_bytes()  # as older readers expect
    assert registry.get_encoding("z").encode("Alice") == registry.get_encoding("p").encode("Alice")


@pytest.mark.parametrize(
    "stored, limit, outcome",
    [
        (gzip.compress(b"ab") + gzip.compress(b"cd"), 4, b"abcd"),  # members concatenated, as gzip.decompress
        (gzip.compress(b"abcde"), 4, "inflates to more than 4 bytes"),
        (gzip.compress(b"x" * 100_000)[:-9], 200_000, "truncated"),
        (b"not gzip at all", 100, "not valid gzip data"),
        (gzip.compress(b"ok") + b"trailing garbage", 100, "not valid gzip data"),
    ],
    ids=["two-members", "over-limit", "truncated", "not-gzip", "trailing-garbage"],
)
def test_bounded_gunzip(stored, limit, outcome):
    from tokend.registry.size_limits import gunzip_at_most

    if isinstance(outcome, bytes):
        assert gunzip_at_most(stored, limit=limit, what="t@1") == outcome
    else:
        with pytest.raises(ModelFormatError, match=outcome):
            gunzip_at_most(stored, limit=limit, what="t@1")


def test_a_manifest_asking_for_more_than_the_cap_is_refused_before_reading(good, registry_dir):
    _write_version(registry_dir, "huge", 1, b"x" * 100, compression="gzip", content_size=MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(ModelFormatError, match=r"above tokend's limit of 67,108,864 bytes"):
        Registry.open(registry_dir).load("huge")


def _make_oversized(path: Path, size: int) -> int:
    """Grow `path` to `size` bytes (a sparse file: no disk used); returns its size as the manifest gives it."""
    declared = path.stat().st_size
    with open(path, "r+b") as file:
        file.truncate(size)
    return declared


def test_a_payload_far_bigger_than_its_manifest_is_refused_after_size_plus_one_bytes(good, registry_dir):
    payload = registry_dir / "good" / "1" / "merges.model"
    declared = _make_oversized(payload, 256 * MiB)
    peak, seconds, raised = _peak_bytes_of(lambda: Registry.open(registry_dir).load("good"))
    assert isinstance(raised, ChecksumMismatchError), raised
    assert f"more than {declared:,} bytes where the manifest gives {declared:,}" in raised.what
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB for a {declared:,}-byte payload"
    assert seconds < 5


def test_an_http_payload_far_bigger_than_its_manifest_is_refused_after_size_plus_one_bytes(good, registry_dir, static_server, tmp_path):
    declared = _make_oversized(registry_dir / "good" / "1" / "merges.model", 256 * MiB)
    server = static_server(registry_dir)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    peak, seconds, raised = _peak_bytes_of(lambda: remote.load("good"))
    assert isinstance(raised, ChecksumMismatchError), raised
    assert f"more than {declared:,} bytes" in raised.what
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert seconds < 5
    assert not (tmp_path / "cache" / "good" / "1" / "merges.model").exists()


@pytest.fixture
def with_specials(registry, trained_small):
    """good@1 (minbpe) and victim@1: a tiktoken payload whose special tokens live only in its manifest."""
    publish_trained(registry, "good", trained_small, version=1)
    registry.publish(
        "victim", payload=dump_tiktoken_ranks(trained_small.encoding.mergeable_ranks), payload_format="tiktoken_ranks",
        pattern=GPT4_PATTERN, special_tokens={"<|a|>": 512, "<|b|>": 513}, provenance={"kind": "imported"},
    )  # fmt: skip
    return registry


def test_an_unparseable_index_refuses_unchecked_manifests_keeps_loaded_models_and_fails_verify(with_specials, registry_dir):
    serving = Registry.open(registry_dir)  # a running server, models loaded before the damage
    held = serving.load("victim")
    # Swap the two special-token ids in the manifest (the payload cannot tell), and break the index.
    manifest_path = registry_dir / "victim" / "1" / "manifest.json"
    document = json.loads(manifest_path.read_text())
    document["special_tokens"] = {"<|a|>": 513, "<|b|>": 512}
    manifest_path.write_text(json.dumps(document, indent=2))
    (registry_dir / "index.json").write_text('{"format_version": 1, "models": {"victim": ')

    fresh = Registry.open(registry_dir)
    with pytest.raises(ModelFormatError) as refused:
        fresh.load("victim")
    message = str(refused.value)
    assert "index.json" in message and "manifest of victim@1 cannot be checked" in message
    assert f"tokend registry index --registry {registry_dir.resolve()}" in message
    assert all(not result.ok and "index.json" in result.error for result in fresh.verify())

    # What was verified before keeps serving; every refresh says loudly what is wrong.
    assert serving.load("victim") is held and held.encoding.special_tokens == {"<|a|>": 512, "<|b|>": 513}
    report = serving.refresh()
    assert "index.json" in report.damaged["victim@1"]
    assert serving.load("victim") is held

    completed = subprocess.run(
        [sys.executable, "-m", "tokend.cli.main", "registry", "verify", "--registry", str(registry_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "FAILED  victim@1" in completed.stdout and "index.json" in completed.stdout

    # Rebuilt index (after the operator checked the manifests): the swapped manifest is what is there now.
    DirectorySource(registry_dir).write_index()
    fresh.refresh()
    assert fresh.get_encoding("victim").special_tokens == {"<|a|>": 513, "<|b|>": 512}
    assert fresh.get_encoding("good").encode("Alice") == with_specials.get_encoding("good").encode("Alice")


def test_a_missing_index_still_loads_with_the_payload_checks(with_specials, registry_dir):
    # A directory assembled by hand has no index: nothing to check the manifest against, nothing broken.
    (registry_dir / "index.json").unlink()
    fresh = Registry.open(registry_dir)
    assert fresh.get_encoding("victim").special_tokens == {"<|a|>": 512, "<|b|>": 513}
    assert all(result.ok for result in fresh.verify())


def test_a_version_whose_manifest_no_reader_accepts_is_not_published(tmp_path):
    """A Tekken file with 65,536 special-token slots (within its own bound) was imported as a version whose
    1.9 MB manifest every registry reader refuses (1 MiB): `tokend serve` could not load it (issue 13,
    hostile round 3). Publishing checks the manifest against the readers' bound first."""
    from support.registries import publish_openai
    from tokend.registry.size_limits import MAX_MANIFEST_BYTES

    registry = Registry.open(tmp_path / "registry", create=True)
    specials = {f"<|reserved_special_token_{n:06d}|>": 100_300 + n for n in range(40_000)}
    with pytest.raises(ModelFormatError, match=r"manifest of big@1 would be [\d,]+ bytes, over the 1,048,576"):
        publish_openai(registry, "cl100k_base", as_name="big", special_tokens=specials)
    assert [summary.name for summary in registry.list_models()] == []
    assert not (tmp_path / "registry" / "big").exists()
    small = dict(list(specials.items())[:1_000])  # Tekken's real 1,000 fit
    manifest = publish_openai(registry, "cl100k_base", as_name="big", special_tokens=small)
    assert len(manifest.to_json_bytes()) < MAX_MANIFEST_BYTES
    assert Registry.open(tmp_path / "registry").load("big").encoding.encode_single_token("<|reserved_special_token_000999|>") == 101_299
