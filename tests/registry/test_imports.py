"""Importing every byte-level format into a registry: what is stored (the user's file verbatim, or a
converted payload with the source hashes in its provenance), what the manifest records (BOS/EOS,
normalizer, chat template), that the loaded model gives the reference library's ids, payloads shared
between versions (also over HTTP), and what is refused before anything is written.
The GGUF files are llama.cpp's, from llama-cpp-python 0.3.36's sdist: test_gguf_import.py."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import mistral_common
import pytest
import tiktoken
import tokenizers
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from support import tokenizer_json as files
from tests.cli.test_cli import fails, ok
from tokend.errors import ModelFormatError
from tokend.registry import Registry
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.importing import detect_format, import_files

TEKKEN = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
TEXT = "Hello, world! It's 2024 — naïve café 日本語 😀\n\n  def f(x):\treturn x**2  <think>"
PROVENANCE = {"kind": "imported", "command": "test"}


def _write_json(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def llama3_file(tmp_path_factory) -> Path:
    return _write_json(tmp_path_factory.mktemp("hf") / "tokenizer.json", files.llama3_tokenizer_json())


def test_tokenizer_json_is_stored_verbatim_and_matches_tokenizers(tmp_path, llama3_file):
    registry = str(tmp_path / "models")
    printed = ok("registry", "import", str(llama3_file), "--name", "llama3", "--registry", registry)
    assert "as llama3@1 (hf_tokenizer_json, 128256 tokens)" in printed
    stored = tmp_path / "models" / "llama3" / "1" / "tokenizer.json"
    assert stored.read_bytes() == llama3_file.read_bytes()
    manifest = json.loads(ok("registry", "show", "llama3", "--registry", registry))
    assert manifest["payload"]["sha256"] == sha256_hex(llama3_file.read_bytes())
    assert (manifest["bos_token"], manifest["eos_token"], manifest["normalizer"]) == ("<|begin_of_text|>", None, None)
    stored_manifest = (tmp_path / "models" / "llama3" / "1" / "manifest.json").read_text()
    assert '"eos_token"' not in stored_manifest and '"shared_with"' not in stored_manifest  # unset: left out
    assert manifest["pattern"] == files.LLAMA3_PATTERN and len(manifest["special_tokens"]) == 256
    assert manifest["provenance"]["source_sha256"] == sha256_hex(llama3_file.read_bytes())
    oracle = tokenizers.Tokenizer.from_file(str(llama3_file))
    expected = oracle.encode(TEXT, add_special_tokens=False).ids
    assert ok("encode", "--model", "llama3", "--registry", registry, "--json", stdin=TEXT) == json.dumps(expected) + "\n"
    assert "1 ok, 0 failed" in ok("registry", "verify", "--registry", registry)


def test_bos_and_eos_can_be_named_at_import(tmp_path, llama3_file):
    registry = Registry.open(tmp_path / "models", create=True)
    manifest = import_files(registry, [llama3_file], name="llama3", eos_token="<|eot_id|>", provenance=PROVENANCE)
    assert (manifest.bos_token, manifest.eos_token) == ("<|begin_of_text|>", "<|eot_id|>")
    with pytest.raises(ModelFormatError, match="eos_token '<nope>' is not a token"):
        import_files(registry, [llama3_file], name="other", eos_token="<nope>", provenance=PROVENANCE)


def test_qwen3_records_its_normalizer(tmp_path):
    path = _write_json(tmp_path / "qwen3.json", files.qwen3_tokenizer_json())
    gz = tmp_path / "qwen3.json.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    registry = Registry.open(tmp_path / "models", create=True)
    manifest = import_files(registry, [gz], name="qwen3", provenance=PROVENANCE)
    assert (manifest.payload_format, manifest.payload.compression, manifest.normalizer) == ("hf_tokenizer_json", "gzip", "NFC")
    assert manifest.payload.content_sha256 == sha256_hex(path.read_bytes())
    enc = registry.get_encoding("qwen3")
    oracle = tokenizers.Tokenizer.from_file(str(path))
    assert enc.encode(TEXT, allowed_special="all") == oracle.encode(TEXT, add_special_tokens=False).ids


def test_tekken_json_is_stored_verbatim_and_matches_mistral_common(tmp_path):
    registry = str(tmp_path / "models")
    assert "(tekken_json, 131072 tokens)" in ok("registry", "import", str(TEKKEN), "--name", "nemo", "--registry", registry)
    assert (tmp_path / "models" / "nemo" / "1" / "tekken.json").read_bytes() == TEKKEN.read_bytes()
    manifest = json.loads(ok("registry", "show", "nemo", "--registry", registry))
    assert (manifest["bos_token"], manifest["eos_token"], manifest["payload_format"]) == ("<s>", "</s>", "tekken_json")
    expected = Tekkenizer.from_file(TEKKEN).encode(TEXT, bos=False, eos=False)
    assert ok("encode", "--model", "nemo", "--registry", registry, "--json", stdin=TEXT) == json.dumps(expected) + "\n"


def test_gpt2_files_become_tiktoken_ranks_with_their_hashes_recorded(tmp_path):
    encoder, vocab_bpe = files.gpt2_files()
    (tmp_path / "encoder.json").write_bytes(encoder)
    (tmp_path / "vocab.bpe").write_bytes(vocab_bpe)
    registry = str(tmp_path / "models")
    ok("registry", "import", str(tmp_path / "vocab.bpe"), str(tmp_path / "encoder.json"), "--name", "gpt2", "--registry", registry)
    manifest = json.loads(ok("registry", "show", "gpt2", "--registry", registry))
    assert (manifest["payload_format"], manifest["payload"]["compression"]) == ("tiktoken_ranks", "gzip")
    assert manifest["payload"]["content_sha256"] == tiktoken_r50k_sha256()
    assert {source["role"]: source["sha256"] for source in manifest["provenance"]["sources"]} == {
        "encoder.json": sha256_hex(encoder), "vocab.bpe": sha256_hex(vocab_bpe)}
    assert manifest["special_tokens"] == {"<|endoftext|>": 50256}
    expected = tiktoken.get_encoding("gpt2").encode(TEXT)
    assert ok("encode", "--model", "gpt2", "--registry", registry, "--json", stdin=TEXT) == json.dumps(expected) + "\n"


def tiktoken_r50k_sha256() -> str:
    return "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"


def test_formats_are_told_from_the_files(tmp_path, llama3_file):
    assert detect_format([llama3_file]) == "hf"
    assert detect_format([TEKKEN]) == "tekken"
    assert detect_format([tmp_path / "a", tmp_path / "b"]) == "gpt2"
    (tmp_path / "ranks.tiktoken").write_bytes(b"YQ== 0\n")
    assert detect_format([tmp_path / "ranks.tiktoken"]) == "tiktoken"
    (tmp_path / "m.model").write_text("minbpe v1\n\n0\n")
    assert detect_format([tmp_path / "m.model"]) == "minbpe"
    (tmp_path / "sp.model").write_bytes(b"\n\x0e\n\x05<unk>\x15\x00\x00\x00\x00\x18\x02")  # a ModelProto's start
    assert detect_format([tmp_path / "sp.model"]) == "sentencepiece"
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ModelFormatError, match="neither a tokenizer.json nor a tekken.json"):
        detect_format([tmp_path / "other.json"])


def test_unsupported_tokenizer_json_is_refused_before_anything_is_written(tmp_path):
    document = files.gpt2_tokenizer_json()
    document["normalizer"] = {"type": "Lowercase"}
    path = _write_json(tmp_path / "tokenizer.json", document)
    registry = tmp_path / "models"
    stderr = fails(1, "registry", "import", str(path), "--name", "bad", "--registry", str(registry))
    assert "normalizer 'Lowercase' is not supported" in stderr
    assert not (registry / "bad").exists()
    stderr = fails(1, "registry", "import", str(TEKKEN), "--like", "cl100k_base", "--name", "x", "--registry", str(registry))
    assert "brings its own pattern" in stderr


# ---- versions sharing a payload file ----------------------------------------------------------------

@pytest.fixture
def shared_registry(tmp_path) -> Path:
    encoder, vocab_bpe = files.gpt2_files()
    (tmp_path / "encoder.json").write_bytes(encoder)
    (tmp_path / "vocab.bpe").write_bytes(vocab_bpe)
    registry = Registry.open(tmp_path / "models", create=True)
    import_files(registry, [tmp_path / "encoder.json", tmp_path / "vocab.bpe"], name="base", provenance=PROVENANCE)
    import_files(registry, [tmp_path / "encoder.json", tmp_path / "vocab.bpe"], name="same", like="gpt2",
                 share_payload_with="base", provenance=PROVENANCE)
    return tmp_path / "models"


def test_a_version_can_share_another_versions_payload(shared_registry):
    registry = Registry.open(shared_registry)
    manifest = registry.manifest("same")
    assert manifest.payload.shared_with == "base@1"
    assert sorted(path.name for path in (shared_registry / "same" / "1").iterdir()) == ["manifest.json"]
    assert registry.get_encoding("same").encode(TEXT) == tiktoken.get_encoding("gpt2").encode(TEXT)
    assert [result.error for result in registry.verify()] == [None, None]
    # the owner's file changing is caught for the sharing version too
    payload = shared_registry / "base" / "1" / "ranks.tiktoken.gz"
    data = bytearray(payload.read_bytes())
    data[1000] ^= 0xFF
    payload.write_bytes(bytes(data))
    assert all("SHA-256 mismatch" in result.error for result in Registry.open(shared_registry).verify())


def test_a_shared_payload_is_served_over_http(shared_registry, static_server, tmp_path):
    server = static_server(shared_registry)
    remote = Registry.open(server.url, cache_dir=tmp_path / "cache")
    assert remote.get_encoding("same").encode(TEXT) == tiktoken.get_encoding("gpt2").encode(TEXT)
    assert (tmp_path / "cache" / "base" / "1" / "ranks.tiktoken.gz").exists()
    assert not (tmp_path / "cache" / "same" / "1" / "ranks.tiktoken.gz").exists()


def test_sharing_a_payload_with_other_content_is_refused(shared_registry, tmp_path):
    registry = Registry.open(shared_registry)
    with pytest.raises(ModelFormatError, match="cannot share the payload of base@1: the contents differ"):
        import_files(registry, [TEKKEN], name="nemo", share_payload_with="base@1", provenance=PROVENANCE)
    assert "nemo" not in [summary.name for summary in registry.list_models()]
