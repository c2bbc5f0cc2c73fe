"""Segments of 8,192 symbols and more (text without spaces, or a model that does not split at whitespace) are
merged one score level at a time (native/sp_bpe.c), the heap's order without the heap: 0 mismatches against
sentencepiece on such segments, for every model of models.py and Llama 2's own vocabulary.

The paths inside: pairs a merge creates that score lower wait for their level; ones that score the same (every
run of ▁ in Llama 2's GGUF, the alternating +0.0/-0.0 scores of the `ties` model) go first within the level;
ones that score higher (`longest_first`, `ties`) send the segment back to the heap.
"""

from __future__ import annotations

import random
import string
from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.package_files import pypi_file
from tests.corpus import corpus_by_kind

LONG = 20_000  # symbols: above the level merge's threshold (8,192)


def _texts() -> dict[str, str]:
    rng = random.Random(7)
    code = "".join("".join(document.split()) for document in corpus_by_kind(limit_bytes=60_000)["code"])[:LONG]
    return {
        "a": "a" * LONG,
        "ab": "ab" * (LONG // 2),
        "spaces": " " * LONG,
        "marks": "\u2581" * LONG,
        "digits": "7" * LONG,
        "random letters": "".join(rng.choices(string.ascii_letters, k=LONG)),
        "few letters": "".join(rng.choices("aeinrst", k=LONG)),
        "code without spaces": code,
        "words and spaces": " ".join(rng.choice(["the", "cat", "a", "", "  ", "tokenization"]) for _ in range(LONG // 4)),
        "CJK": "".join(chr(rng.randint(0x4E00, 0x4FFF)) for _ in range(LONG)),
    }


TEXTS = _texts()


@pytest.mark.parametrize("label", sorted(TEXTS))
def test_long_segments_match_sentencepiece(ours, oracle, model_name, label):
    text = TEXTS[label]
    assert ours.encode_ordinary(text) == oracle.encode(text), f"{model_name}: {label}"


@lru_cache(maxsize=None)
def _llama2():
    """Llama 2's vocabulary (llama.cpp's vocab-only GGUF), as a sentencepiece model: its runs of ▁ all score
    -1e9, so merging them creates pairs of the level being merged."""
    import sentencepiece

    from tokend.engine.sentencepiece import SentencePieceEncoding
    from tokend.registry.gguf_tokenizer import read_gguf_tokenizer

    gguf = pypi_file("llama-cpp-python", "0.3.36", "vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf", sdist=True)
    data = read_gguf_tokenizer(gguf).payload
    return SentencePieceEncoding.from_model_file("llama2", data), sentencepiece.SentencePieceProcessor(model_proto=data)


@pytest.mark.parametrize("label", sorted(TEXTS))
def test_llama2_long_segments_match_sentencepiece(label):
    ours, oracle = _llama2()
    text = TEXTS[label]
    assert ours.encode_ordinary(text) == oracle.encode(text), label


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alphabet=st.lists(st.sampled_from(list("aeinrst▁ 7é中") + ["ab", "the", "  "]), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    model_name=st.sampled_from(["mistral_v1", "llama2_like", "ties", "whitespace_runs", "symbols", "longest_first", "shortest_first"]),
)
def test_hypothesis_long_segments_of_a_few_symbols(alphabet, seed, model_name):
    from tests.engine.sentencepiece.models import ours, oracle

    rng = random.Random(seed)
    text = "".join(rng.choices(alphabet, k=9_000))
    assert ours(model_name).encode_ordinary(text) == oracle(model_name).encode(text)


# Segments of 17 to 8,191 symbols take a tree of minima over the pairs' (score, position) keys (sp_bpe.c's
# merge_medium; the heap before, and the array scan up to 64 symbols): words of frequent letters of those lengths
# were SentencePiece BPE's worst shape (Mistral v1: 0.11-0.21 s a MB). Prefixes of each long text about the
# switches (16/17 symbols, 64/65, 8,191), one segment each where the model splits at spaces.
MEDIUM_LENGTHS = (15, 16, 17, 18, 40, 64, 65, 300, 2_000, 8_190)


@pytest.mark.parametrize("label", sorted(TEXTS))
def test_medium_segments_match_sentencepiece(ours, oracle, model_name, label):
    text = " ".join(TEXTS[label][:length] for length in MEDIUM_LENGTHS)
    assert ours.encode_ordinary(text) == oracle.encode(text), f"{model_name}: {label}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alphabet=st.lists(st.sampled_from(list("aeinrst▁ 7é中") + ["ab", "the", "  "]), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    length=st.integers(17, 8_191),
    model_name=st.sampled_from(["mistral_v1", "llama2_like", "ties", "whitespace_runs", "symbols", "longest_first", "shortest_first"]),
)
def test_hypothesis_medium_segments_of_a_few_symbols(alphabet, seed, length, model_name):
    from tests.engine.sentencepiece.models import ours, oracle

    rng = random.Random(seed)
    text = "".join(rng.choices(alphabet, k=length))
    assert ours(model_name).encode_ordinary(text) == oracle(model_name).encode(text)
