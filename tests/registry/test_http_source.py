"""A directory registry served by python's http.server on 127.0.0.1 and read through the HTTP source:
same answers as the directory, everything checksum-verified before use or caching."""

from __future__ import annotations

import pytest

from tokend.errors import ChecksumMismatchError, RegistryError
from tokend.registry import Registry
from tokend.registry.http_source import HttpSource

from .trained_models import publish_trained


@pytest.fixture
def origin(registry, trained_small, alice_text):
    """The writable directory registry behind the web server: two models, an alias."""
    from tokend.engine import train

    publish_trained(registry, "good", trained_small, version=1)
    publish_trained(registry, "other", train(alice_text[:20_000], 300), version=1)
    registry.set_alias("good", "stable", 1)
    return registry


def test_an_http_registry_answers_like_the_directory_it_serves(origin, registry_dir, static_server, tmp_path):
    server = static_server(registry_dir)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    assert [(m.name, m.versions, dict(m.aliases)) for m in remote.list_models()] == [
        (m.name, m.versions, dict(m.aliases)) for m in origin.list_models()
    ]
    assert remote.resolve("good@stable") == ("good", 1)
    text = "`Off with her head!' the Queen shouted at the top of her voice."
    assert remote.get_encoding("good").encode(text) == origin.get_encoding("good").encode(text)
    assert remote.load("good").manifest_sha256 == origin.load("good").manifest_sha256
    assert (tmp_path / "cache" / "good" / "1" / "merges.model").read_bytes() == (
        registry_dir / "good" / "1" / "merges.model"
    ).read_bytes()


def test_a_tampered_remote_payload_is_refused_never_cached_and_others_serve(origin, registry_dir, static_server, tmp_path):
    payload = registry_dir / "other" / "1" / "merges.model"
    payload.write_bytes(payload.read_bytes().replace(b"\n2", b"\n3", 1))
    server = static_server(registry_dir)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    with pytest.raises(ChecksumMismatchError, match="other@1"):
        remote.load("other")
    assert not (tmp_path / "cache" / "other" / "1" / "merges.model").exists()
    assert remote.load("good").version == 1
    assert {result.ref: result.ok for result in remote.verify()} == {"good@1": True, "other@1": False}


def test_a_remote_manifest_that_differs_from_the_index_is_refused(origin, registry_dir, static_server, tmp_path):
    manifest = registry_dir / "other" / "1" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"description": ""', b'"description": "changed"'))
    server = static_server(registry_dir)
    with pytest.raises(ChecksumMismatchError, match="manifest of other@1"):
        Registry.open(server.url, cache_dir=tmp_path / "cache").load("other")


def test_a_damaged_cache_file_is_detected_and_fetched_again(origin, registry_dir, static_server, tmp_path):
    server = static_server(registry_dir)
    Registry.open(server.url, cache_dir=tmp_path / "cache").load("good")
    cached = tmp_path / "cache" / "good" / "1" / "merges.model"
    cached.write_bytes(b"garbage")
    reloaded = Registry.open(server.url, cache_dir=tmp_path / "cache").load("good")
    assert reloaded.encoding.encode("Alice") == origin.get_encoding("good").encode("Alice")
    assert cached.read_bytes() == (registry_dir / "good" / "1" / "merges.model").read_bytes()


def test_new_versions_and_alias_moves_reach_a_running_http_reader(origin, registry_dir, static_server, tmp_path, trained_small):
    server = static_server(registry_dir)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    assert remote.resolve("good@stable") == ("good", 1)
    publish_trained(origin, "good", trained_small, version=2)
    origin.set_alias("good", "stable", 2)
    report = remote.refresh()
    assert report.added == ["good@2"]
    assert [str(move) for move in report.alias_moves] == ["good@stable: 1 -> 2"]
    assert remote.load("good@stable").version == 2


def test_an_unreachable_http_registry_is_a_clear_error_and_refresh_keeps_serving(origin, registry_dir, static_server, tmp_path):
    server = static_server(registry_dir)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    remote.load("good")
    server.stop()
    report = remote.refresh()
    assert report.error is not None and "cannot reach the registry" in report.error
    assert remote.load("good").version == 1
    with pytest.raises(RegistryError, match=r"cannot reach the registry at http://127\.0\.0\.1"):
        Registry.open(server.url, cache_dir=tmp_path / "cache2")


def test_http_source_refuses_non_http_urls():
    with pytest.raises(RegistryError, match="http:// or https://"):
        HttpSource("ftp://127.0.0.1/models")
