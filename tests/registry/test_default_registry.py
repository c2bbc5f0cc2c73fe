"""The embedded default registry: OpenAI's encodings give tiktoken's ids, their content hashes are
tiktoken's published ones, and the trained model is reproduced exactly by the command in its manifest."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
import tiktoken

from tokend.errors import ModelNotFoundError
from tokend.registry import Registry, default_registry, get_encoding, list_encoding_names
from tokend.registry.atomic_files import sha256_hex

from .conftest import ALICE, REPO_ROOT

# tiktoken's published SHA-256 of the (uncompressed) rank files, from tiktoken_ext/openai_public.py.
PUBLISHED_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
TEXTS = [
    "hello world",
    "Alice was beginning to get very tired of sitting by her sister on the bank",
    "    indented code\n\tdef f(x):  return x**2  # 12345678\r\n",
    "Ünïcödé 日本語のテキスト 🐇🕰️ and <|endoftext|> as plain text",
]


def test_embedded_registry_lists_the_shipped_models():
    assert list_encoding_names() == ["alice_2k", "cl100k_base", "o200k_base"]
    versions = {summary.name: summary.versions for summary in default_registry().list_models()}
    assert versions == {"alice_2k": (1,), "cl100k_base": (1, 2), "o200k_base": (1, 2)}


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_version_2_is_version_1_with_the_openai_chat_format(name):
    first, second = default_registry().manifest(f"{name}@1"), default_registry().manifest(f"{name}@2")
    assert first.chat_format is None and second.chat_format.name == "openai-chat"
    assert (second.payload.sha256, second.pattern, second.special_tokens) == (first.payload.sha256, first.pattern, first.special_tokens)
    assert second.provenance.model_extra["chat_format_added_to"] == f"{name}@1"
    # One Encoding serves both versions (same verified payload): the same ids, one copy in memory.
    assert get_encoding(f"{name}@2") is get_encoding(f"{name}@1")
    assert default_registry().load(name).version == 2 and default_registry().load(name).chat is not None


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_openai_encodings_give_tiktokens_ids(name):
    ours, theirs = get_encoding(name), tiktoken.get_encoding(name)
    assert ours.n_vocab == theirs.n_vocab
    for text in TEXTS:
        assert ours.encode(text, disallowed_special=()) == theirs.encode(text, disallowed_special=())
    assert ours.encode("<|endoftext|>", allowed_special="all") == theirs.encode("<|endoftext|>", allowed_special="all")


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("version", [1, 2])
def test_openai_payloads_carry_tiktokens_published_hash(name, version):
    manifest = default_registry().manifest(f"{name}@{version}")
    assert manifest.payload.compression == "gzip"
    assert manifest.payload.content_sha256 == PUBLISHED_SHA256[name]
    assert manifest.provenance.kind == "imported"


def test_every_embedded_version_verifies():
    assert [(result.ref, result.error) for result in default_registry().verify()] == [
        ("alice_2k@1", None), ("cl100k_base@1", None), ("cl100k_base@2", None), ("o200k_base@1", None),
        ("o200k_base@2", None),
    ]


def test_get_encoding_is_cached_and_unknown_names_list_what_exists():
    assert get_encoding("cl100k_base") is get_encoding("cl100k_base@2") is get_encoding("cl100k_base@1")
    with pytest.raises(ModelNotFoundError) as unknown:
        get_encoding("gpt2")
    assert unknown.value.available == ["alice_2k", "cl100k_base", "o200k_base"]
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
