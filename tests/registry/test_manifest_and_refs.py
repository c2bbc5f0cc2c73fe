"""Manifests refuse what they do not understand; model references parse as documented."""

from __future__ import annotations

import json

import pytest

from tokend.errors import ModelFormatError
from tokend.registry.manifest import MANIFEST_FORMAT_VERSION, parse_manifest
from tokend.registry.model_ref import ParsedModelRef, parse_model_ref, validate_alias

VALID = {
    "format_version": 1,
    "name": "toy",
    "version": 3,
    "payload_format": "minbpe_model",
    "payload": {"path": "merges.model", "size": 10, "sha256": "a" * 64},
    "pattern": r"\S+",
    "special_tokens": {"<|end|>": 300},
    "n_vocab": 301,
    "created_at": "2026-01-01T00:00:00Z",
    "provenance": {"kind": "trained", "command": "tokend train ..."},
}


def _bytes(**changes) -> bytes:
    document = json.loads(json.dumps(VALID))
    document.update(changes)
    return json.dumps(document).encode()


def test_a_valid_manifest_parses_and_names_its_exact_version():
    manifest = parse_manifest(_bytes(), what="toy@3")
    assert manifest.ref == "toy@3"
    assert manifest.special_tokens == {"<|end|>": 300}
    assert manifest.payload.compression == "none"
    assert MANIFEST_FORMAT_VERSION == 1


def test_an_unknown_format_version_is_refused_with_a_clear_message():
    with pytest.raises(ModelFormatError, match=r"toy@3.*format_version 2 is not supported"):
        parse_manifest(_bytes(format_version=2), what="toy@3")


@pytest.mark.parametrize(
    "changes, fragment",
    [
        ({"version": 0}, "version"),
        ({"name": "bad/name"}, "invalid model name"),
        ({"payload_format": "sentencepiece"}, "payload_format"),
        ({"payload": {"path": "../escape", "size": 1, "sha256": "a" * 64}}, "plain file name"),
        ({"payload": {"path": "merges.model", "size": 1, "sha256": "XYZ"}}, "SHA-256"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_manifests_are_refused_naming_the_field(changes, fragment):
    with pytest.raises(ModelFormatError, match=fragment):
        parse_manifest(_bytes(**changes), what="toy@3")


def test_a_manifest_that_is_not_json_is_refused():
    with pytest.raises(ModelFormatError, match="toy@3"):
        parse_manifest(b"{not json", what="toy@3")


@pytest.mark.parametrize(
    "ref, parsed",
    [
        ("cl100k_base", ParsedModelRef("cl100k_base", None, None)),
        ("cl100k_base@1", ParsedModelRef("cl100k_base", 1, None)),
        ("mine@17", ParsedModelRef("mine", 17, None)),
        ("mine@stable", ParsedModelRef("mine", None, "stable")),
        ("mine@latest", ParsedModelRef("mine", None, None)),
    ],
)
def test_model_refs_parse(ref, parsed):
    assert parse_model_ref(ref) == parsed


@pytest.mark.parametrize("ref", ["", "@1", "mine@", "mine@0", "mine@01", "mine@-1", "a/b", "mine@st able"])
def test_malformed_refs_are_refused(ref):
    with pytest.raises(ValueError):
        parse_model_ref(ref)


def test_latest_cannot_be_set_as_an_alias():
    with pytest.raises(ValueError, match="highest version"):
        validate_alias("latest")
    with pytest.raises(ValueError, match="starting with a letter"):
        validate_alias("7")
