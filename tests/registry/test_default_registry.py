"""The embedded default registry: OpenAI's encodings give tiktoken's ids, their content hashes are
tiktoken's published ones, versions that share a payload file hold none of their own, and the trained
model is reproduced exactly by the command in its manifest."""

from __future__ import annotations

import shlex
import subprocess
import sys

from pathlib import Path

import pytest
import tiktoken

from tokend.errors import ModelNotFoundError
from tokend.registry import Registry, default_registry, get_encoding, list_encoding_names
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.registry import EMBEDDED_REGISTRY_DIR

from .conftest import ALICE, REPO_ROOT

# tiktoken's published SHA-256 of the (uncompressed) rank files, from tiktoken_ext/openai_public.py.
PUBLISHED_SHA256 = {
    "gpt2": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",  # r50k_base's file
    "r50k_base": "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    "p50k_base": "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    "p50k_edit": "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "o200k_harmony": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
OPENAI = sorted(PUBLISHED_SHA256)
SHARED = {"gpt2": "r50k_base@1", "p50k_edit": "p50k_base@1", "o200k_harmony": "o200k_base@1"}
# Versions beyond @1: the same payload with a chat format.
VERSIONS = {"cl100k_base": (1, 2), "o200k_base": (1, 2)}
EMBEDDED = ["alice_2k", "cl100k_base", "gpt2", "o200k_base", "o200k_harmony", "p50k_base", "p50k_edit", "r50k_base"]
TEXTS = [
    "hello world",
    "Alice was beginning to get very tired of sitting by her sister on the bank",
    "    indented code\n\tdef f(x):  return x**2  # 12345678\r\n",
    "Ünïcödé 日本語のテキスト 🐇🕰️ and <|endoftext|> as plain text",
]


def test_embedded_registry_lists_the_shipped_models():
    assert list_encoding_names() == EMBEDDED
    versions = {summary.name: summary.versions for summary in default_registry().list_models()}
    assert versions == {name: VERSIONS.get(name, (1,)) for name in EMBEDDED}


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_version_2_is_version_1_with_the_openai_chat_format(name):
    first, second = default_registry().manifest(f"{name}@1"), default_registry().manifest(f"{name}@2")
    assert first.chat_format is None and second.chat_format.name == "openai-chat"
    assert (second.payload.sha256, second.pattern, second.special_tokens) == (first.payload.sha256, first.pattern, first.special_tokens)
    assert second.provenance.extra["chat_format_added_to"] == f"{name}@1"
    assert second.payload.shared_with == f"{name}@1"  # one copy of the ranks in the wheel
    # One Encoding serves both versions (same verified payload): the same ids, one copy in memory.
    assert get_encoding(f"{name}@2") is get_encoding(f"{name}@1")
    assert default_registry().load(name).version == 2 and default_registry().load(name).chat is not None


@pytest.mark.parametrize("name", OPENAI)
def test_openai_encodings_give_tiktokens_ids(name):
    ours, theirs = get_encoding(name), tiktoken.get_encoding(name)
    assert (ours.n_vocab, dict(ours.special_tokens), ours.pattern) == (theirs.n_vocab, theirs._special_tokens, theirs._pat_str)
    assert ours.mergeable_ranks == theirs._mergeable_ranks
    for text in TEXTS:
        assert ours.encode(text, disallowed_special=()) == theirs.encode(text, disallowed_special=())
    text = "<|endoftext|> and " + " ".join(sorted(theirs.special_tokens_set))
    assert ours.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")
    assert ours.decode(sorted(theirs._special_tokens.values())) == theirs.decode(sorted(theirs._special_tokens.values()))


@pytest.mark.parametrize("name,version", [(name, version) for name in OPENAI for version in VERSIONS.get(name, (1,))])
def test_openai_payloads_carry_tiktokens_published_hash(name, version):
    manifest = default_registry().manifest(f"{name}@{version}")
    assert manifest.payload.compression == "gzip"
    assert manifest.payload.content_sha256 == PUBLISHED_SHA256[name]
    assert manifest.provenance.kind == "imported"
    if name not in ("cl100k_base", "o200k_base"):  # imported before manifests recorded licences: see NOTICE.md
        assert manifest.provenance.license


@pytest.mark.parametrize("name", sorted(SHARED))
def test_versions_that_share_a_payload_hold_no_copy(name):
    manifest = default_registry().manifest(name)
    owner = default_registry().manifest(SHARED[name])
    assert manifest.payload.shared_with == SHARED[name]
    assert manifest.payload.replace(shared_with=None) == owner.payload
    assert [path.name for path in (EMBEDDED_REGISTRY_DIR / name / "1").iterdir()] == ["manifest.json"]


def test_gpt2_records_gpt2s_own_files():
    provenance = default_registry().manifest("gpt2@1").provenance
    assert {source["role"]: source["sha256"] for source in provenance.sources} == {
        "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    }


def test_every_embedded_version_verifies():
    assert [(result.ref, result.error) for result in default_registry().verify()] == [
        (f"{name}@{version}", None) for name in EMBEDDED for version in VERSIONS.get(name, (1,))
    ]


def test_every_payload_file_is_named_in_the_notice():
    notice = (EMBEDDED_REGISTRY_DIR / "NOTICE.md").read_text(encoding="utf-8")
    for name in EMBEDDED:
        manifest = default_registry().manifest(name)
        assert f"{name}@1" in notice
        if manifest.payload.shared_with is None:
            assert f"`{name}/1/{manifest.payload.path}`" in notice


def test_get_encoding_is_cached_and_unknown_names_list_what_exists():
    assert get_encoding("cl100k_base") is get_encoding("cl100k_base@2") is get_encoding("cl100k_base@1")
    with pytest.raises(ModelNotFoundError) as unknown:
        get_encoding("p99k_base")
    assert unknown.value.available == EMBEDDED
    assert isinstance(unknown.value, ValueError)  # as tiktoken.get_encoding raises


def test_trained_model_is_reproduced_by_the_command_in_its_manifest(tmp_path):
    manifest = default_registry().manifest("alice_2k")
    provenance = manifest.provenance
    assert provenance.kind == "trained"
    assert provenance.inputs == [{"path": "corpus/alice29.txt", "sha256": sha256_hex(ALICE.read_bytes()), "size": ALICE.stat().st_size}]
    argv = shlex.split(provenance.command)
    assert argv[0] == "tokend" and argv[1] == "train"
    # Same command, from the repository root, into a scratch registry instead of the package.
    argv[argv.index("--registry") + 1] = str(tmp_path / "rebuilt")
    completed = subprocess.run(
        [sys.executable, "-m", "tokend.cli.main", *argv[1:], "--quiet"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    rebuilt = Registry.open(tmp_path / "rebuilt").manifest("alice_2k@1")
    assert rebuilt.payload.sha256 == manifest.payload.sha256
    assert (rebuilt.pattern, rebuilt.special_tokens, rebuilt.n_vocab) == (manifest.pattern, manifest.special_tokens, 2049)


def test_tokend_get_encoding_is_the_embedded_registry():
    import tokend

    assert tokend.get_encoding("cl100k_base") is get_encoding("cl100k_base")
    assert tokend.get_encoding("alice_2k").name == "alice_2k"
