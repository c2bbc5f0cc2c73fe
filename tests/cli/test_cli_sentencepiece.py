"""`tokend registry import` of sentencepiece `.model` and GGUF files, then `tokend encode|count|decode` on them,
run as a user would (the console script in a subprocess), held to sentencepiece."""

from __future__ import annotations

import json

from tests.cli.test_cli import fails, ok
from tests.engine.sentencepiece.models import model_bytes, oracle
from tests.registry.test_sentencepiece_models import bert_gguf, gguf_file, llama_vectors


def test_import_a_sentencepiece_model_and_encode(tmp_path):
    model = tmp_path / "tokenizer.model"
    model.write_bytes(model_bytes("mistral_v1"))
    registry = str(tmp_path / "models")
    out = ok("registry", "import", str(model), "--format", "sentencepiece", "--name", "mistral", "--registry", registry)
    assert "mistral@1 (sentencepiece_model, 32000 tokens)" in out
    text = "Hello  world!\n\t😀 12345"
    ids = json.loads(ok("encode", "-m", "mistral", "--registry", registry, "--json", stdin=text))
    assert ids == oracle("mistral_v1").encode(text)
    assert ok("count", "-m", "mistral", "--registry", registry, stdin=text).strip() == str(len(ids))
    assert ok("decode", "-m", "mistral", "--registry", registry, "--errors", "replace", "--ids", json.dumps([1, *ids, 2])) == text
    # the format is found from the file too (a binary .model that is not minbpe text)
    assert "sentencepiece_model" in ok("registry", "import", str(model), "--name", "again", "--registry", registry)
    # `registry show` says how it tokenizes and which tokens it names for BOS/EOS/UNK/PAD
    shown = json.loads(ok("registry", "show", "mistral", "--registry", registry))
    theirs = oracle("mistral_v1")
    assert (shown["family"], shown["bos_token"], shown["eos_token"], shown["unk_token"], shown["pad_token"]) == (
        "sentencepiece-bpe", *(theirs.id_to_piece(i) for i in (theirs.bos_id(), theirs.eos_id(), theirs.unk_id())), None)


def test_special_tokens_follow_the_cli_policy(tmp_path):
    model = tmp_path / "v3.model"
    model.write_bytes(model_bytes("mistral_v3"))
    registry = str(tmp_path / "models")
    ok("registry", "import", str(model), "--name", "mistral", "--registry", registry)
    error = fails(1, "encode", "-m", "mistral", "--registry", registry, "--text", "[INST] hi")
    assert "--allowed-special '[INST]'" in error
    ids = ok("encode", "-m", "mistral", "--registry", registry, "--text", "[INST] hi", "--allowed-special", "all").split()
    assert ids[0] == "3" and list(map(int, ids[1:])) == oracle("mistral_v3").encode(" hi")
    ordinary = ok("encode", "-m", "mistral", "--registry", registry, "--text", "[INST] hi", "--ordinary").split()
    assert list(map(int, ordinary)) == oracle("mistral_v3").encode("[INST] hi")


def test_import_the_tokenizer_of_a_gguf_file(tmp_path):
    registry = str(tmp_path / "models")
    out = ok("registry", "import", str(gguf_file("ggml-vocab-llama-spm.gguf")), "--name", "llama2", "--registry", registry)
    assert "llama2@1 (sentencepiece_model, 32000 tokens)" in out
    text, want = llama_vectors()[-2]  # the long multi-line case
    assert json.loads(ok("encode", "-m", "llama2", "--registry", registry, "--json", "--text", text)) == want
    error = fails(1, "registry", "import", str(bert_gguf(tmp_path)), "--name", "bert", "--registry", registry)
    assert "tokenizer.ggml.model 'bert' is not supported" in error
    mismatch = fails(1, "registry", "import", str(gguf_file("ggml-vocab-llama-spm.gguf")), "--name", "llama2b",
                     "--registry", registry, "--expected-sha256", "0" * 64)
    assert "0" * 64 in mismatch and "ggml-vocab-llama-spm.gguf" in mismatch
    refused = fails(1, "registry", "import", str(gguf_file("ggml-vocab-llama-spm.gguf")), "--name", "x", "--registry",
                    registry, "--pattern", "gpt4")
    assert "a gguf file brings its own pattern and special tokens" in refused
