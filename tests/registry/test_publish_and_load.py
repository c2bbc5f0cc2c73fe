"""Publish -> resolve -> load -> encode on a real directory; immutability; unknown refs list what exists."""

from __future__ import annotations

import json
import threading

import pytest

from tokend.errors import ModelFormatError, ModelNotFoundError, RegistryError, VersionConflictError
from tokend.registry import Registry

from .trained_models import minbpe_payload, publish_trained

SAMPLES = [
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "`Curiouser and curiouser!' cried Alice (she was so much surprised).",
    "Ünïcödé, emoji 🐇 and digits 1234567 are not in the training text <|endoftext|>",
    "",
]


def test_trained_model_published_resolved_and_loaded_encodes_like_the_trainer(registry, registry_dir, trained_small):
    manifest = publish_trained(registry, "small", trained_small)
    assert manifest.ref == "small@1"
    # A fresh registry object (another process would see the same): nothing shared in memory.
    reopened = Registry.open(registry_dir)
    assert reopened.resolve("small") == ("small", 1)
    loaded = reopened.load("small@1")
    assert (loaded.name, loaded.version) == ("small", 1)
    for text in SAMPLES:
        expected = trained_small.encoding.encode(text, allowed_special="all")
        assert loaded.encoding.encode(text, allowed_special="all") == expected
        assert loaded.encoding.decode(expected) == text
    assert loaded.encoding.n_vocab == trained_small.encoding.n_vocab == 513
    assert loaded.encoding.special_tokens == {"<|endoftext|>": 512}


def test_load_happens_once_and_is_shared_between_threads(registry, trained_small):
    publish_trained(registry, "small", trained_small)
    results = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(registry.load("small"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert all(result is results[0] for result in results)
    assert registry.get_encoding("small@1") is results[0].encoding


def test_versions_order_numerically_and_latest_is_the_highest(registry, trained_small, alice_text):
    from tokend.engine import train

    other = train(alice_text[:20_000], 300, name="tiny")
    publish_trained(registry, "m", trained_small, version=2)
    publish_trained(registry, "m", other, version=10)
    publish_trained(registry, "m", other, version=9)  # same content as 10, different version: allowed
    (summary,) = registry.list_models()
    assert summary.versions == (2, 9, 10)
    assert summary.latest_version == 10
    assert registry.resolve("m") == ("m", 10)
    assert registry.resolve("m@latest") == ("m", 10)
    assert publish_trained(registry, "m", trained_small).version == 11  # no version given: latest + 1


def test_republishing_identical_content_is_idempotent(registry, registry_dir, trained_small):
    first = publish_trained(registry, "small", trained_small, version=1, description="first")
    again = publish_trained(registry, "small", trained_small, version=1, description="a new description")
    assert again == first  # the stored manifest is kept, description included
    assert json.loads((registry_dir / "small" / "1" / "manifest.json").read_text())["description"] == "first"


def test_publishing_different_content_under_a_published_version_is_refused(registry, registry_dir, trained_small, alice_text):
    from tokend.engine import train

    publish_trained(registry, "small", trained_small, version=1)
    before = (registry_dir / "small" / "1" / "merges.model").read_bytes()
    different = train(alice_text[:20_000], 300)
    with pytest.raises(VersionConflictError, match=r"small@1 is already published .* small@2"):
        publish_trained(registry, "small", different, version=1)
    assert (registry_dir / "small" / "1" / "merges.model").read_bytes() == before


def test_a_payload_that_does_not_load_is_never_published(registry, registry_dir):
    with pytest.raises(ModelFormatError):
        registry.publish("broken", version=1, payload=b"minbpe v1\nx\n0\n1 2 3\n", payload_format="minbpe_model",
                         provenance={"kind": "imported"})
    assert not (registry_dir / "broken").exists()
    assert registry.list_models() == []


def test_unknown_references_list_what_exists(registry, trained_small):
    publish_trained(registry, "small", trained_small, version=1)
    publish_trained(registry, "small", trained_small, version=2)
    registry.set_alias("small", "stable", 1)
    with pytest.raises(ModelNotFoundError) as unknown_name:
        registry.resolve("nope")
    assert unknown_name.value.available == ["small"]
    assert "small" in str(unknown_name.value) and "nope" in str(unknown_name.value)
    with pytest.raises(ModelNotFoundError) as unknown_version:
        registry.load("small@7")
    assert unknown_version.value.available == ["small@1", "small@2", "small@stable"]
    assert "small@1, small@2, small@stable" in str(unknown_version.value)
    with pytest.raises(ModelNotFoundError, match="no alias 'prod'"):
        registry.resolve("small@prod")
    with pytest.raises(ModelNotFoundError, match="available models: small"):
        registry.resolve("bad name!")
    assert isinstance(unknown_name.value, ValueError)  # code written for tiktoken catches ValueError


def test_aliases_move_and_every_move_is_recorded(registry, registry_dir, trained_small):
    publish_trained(registry, "small", trained_small, version=1)
    publish_trained(registry, "small", trained_small, version=2)
    assert registry.set_alias("small", "stable", 1) is None
    assert registry.resolve("small@stable") == ("small", 1)
    assert registry.set_alias("small", "stable", 2) == 1
    assert registry.resolve("small@stable") == ("small", 2)
    history = registry.alias_history("small")
    assert [(move["alias"], move["from"], move["to"]) for move in history] == [("stable", None, 1), ("stable", 1, 2)]
    with pytest.raises(ModelNotFoundError, match="no such version"):
        registry.set_alias("small", "stable", 5)
    assert registry.resolve("small@stable") == ("small", 2)
    index = json.loads((registry_dir / "index.json").read_text())
    assert index["models"]["small"]["aliases"] == {"stable": 2}
    assert sorted(index["models"]["small"]["versions"]) == ["1", "2"]


def test_the_embedded_registry_is_read_only(trained_small):
    embedded = Registry.open()
    with pytest.raises(RegistryError, match="read-only"):
        embedded.publish("x", payload=minbpe_payload(trained_small), payload_format="minbpe_model", version=1,
                         provenance={"kind": "trained"})
    with pytest.raises(RegistryError, match="read-only"):
        embedded.set_alias("cl100k_base", "stable", 1)


def test_opening_a_missing_directory_says_how_to_fix_it(tmp_path):
    with pytest.raises(RegistryError, match="does not exist"):
        Registry.open(tmp_path / "missing")
    with pytest.raises(RegistryError, match="unsupported registry location"):
        Registry.open("s3://bucket/models")


@pytest.mark.parametrize("name, version, fragment", [("ok", 0, "version: must be an integer >= 1"), ("bad name", 1, "invalid model name")])
def test_invalid_names_and_versions_are_refused_before_anything_is_written(registry, registry_dir, trained_small, name, version, fragment):
    with pytest.raises(ModelFormatError, match=fragment):
        publish_trained(registry, name, trained_small, version=version)
    assert registry.list_models() == []
