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


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b'{"provenance": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not UTF-8 JSON"),  # nested too deep
        (b'{"n_vocab": ' + b"1" * 5_000 + b"}", "not UTF-8 JSON"),  # more digits than int() reads
        (json.dumps(VALID).encode("utf-16"), "not UTF-8 JSON"),
        (_bytes(special_tokens={"<|end|>": 300, "<x\ud800>": 299}), r"special_tokens: .*lone surrogate"),
        (_bytes(description="\udfff"), r"description: .*lone surrogate"),
    ],
    ids=["nested 100,000 deep", "5,000-digit number", "UTF-16", "lone surrogate in a special token", "in text"],
)
def test_manifest_bytes_that_are_no_utf8_json_text_are_refused_as_a_model_format_error(data, fragment):
    # What a damaged or hostile registry can store: the load fails as a ModelFormatError naming the version
    # (remembered, served as FAILED_PRECONDITION), never a RecursionError/ValueError/UnicodeEncodeError.
    with pytest.raises(ModelFormatError, match=rf"toy@3 is invalid: {fragment}"):
        parse_manifest(data, what="toy@3")


def test_a_surrogate_pair_spelled_as_escapes_is_text():
    manifest = parse_manifest(_bytes(description="\\ud83d\\ude00").replace(b"\\\\u", b"\\u"), what="toy@3")
    assert manifest.description == "\U0001f600"


def test_provenance_keeps_every_other_field_even_one_named_self():
    document = json.loads(_bytes())
    document["provenance"] |= {"self": "me", "license": "MIT"}
    manifest = parse_manifest(json.dumps(document).encode(), what="toy@3")
    assert (manifest.provenance.self, manifest.provenance.license) == ("me", "MIT")
    assert json.loads(manifest.to_json_bytes())["provenance"] == document["provenance"] | {
        "tool": None, "source": None, "source_sha256": None, "source_url": None, "inputs": [], "settings": {},
    }  # fmt: skip


@pytest.mark.parametrize("shared_with", ["base@\u00b2", "base@\u0661", "base@01", "base@x", "base"])
def test_shared_with_names_an_exact_version_in_ascii_digits(shared_with):
    payload = {"path": "merges.model", "size": 10, "sha256": "a" * 64, "shared_with": shared_with}
    with pytest.raises(ModelFormatError, match="shared_with"):
        parse_manifest(_bytes(payload=payload), what="toy@3")


@pytest.mark.parametrize("name", ["toy\n", "toy\r\n"])
def test_a_name_with_a_trailing_line_break_is_refused(name):
    with pytest.raises(ModelFormatError, match="invalid model name"):
        parse_manifest(_bytes(name=name), what="toy@3")
    with pytest.raises(ValueError, match="starting with a letter"):
        validate_alias("stable\n")


def test_a_digest_with_a_trailing_line_break_is_refused():
    with pytest.raises(ModelFormatError, match="SHA-256"):
        parse_manifest(_bytes(payload={"path": "merges.model", "size": 1, "sha256": "a" * 64 + "\n"}), what="toy@3")
