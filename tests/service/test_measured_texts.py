"""A text the service measures before admitting it (its normalized size may make the request large: a SentencePiece
Unigram model's, an NFC model's) is normalized once: the encode takes the measured form (engine/normalized_texts.py)
instead of normalizing it again, which cost 15-22 % of such a count (docs/decisions.md, hostile23, estimates24).
The answers stay the references' (sentencepiece, tokenizers). In-process service over a real registry, with a
work admission (without one nothing is measured)."""

from __future__ import annotations

import json

import pytest

from support.fuzz_references import model_and_reference
from support.tokenizer_json import qwen3_tokenizer_json
from tests.engine.sentencepiece.models import model_bytes, oracle
from tokend.engine import text_pipeline
from tokend.engine.normalized_texts import keeping_normalized, kept_normalized
from tokend.registry import Registry
from tokend.registry.importing import import_files
from tokend.service import Limits, ServedModels, TokenizerService, recording
from tokend.service.admission import WorkAdmission

LIGATURE = "\ufdfa"  # nmt_nfkc: 39 bytes
ENGLISH = "The quick brown fox jumps over the lazy dog, and then some more words follow. "
# ~100 KB: past the size (~13 KB) where 16 times the input could make a Unigram request large, so it is measured
UNIGRAM_TEXT = (ENGLISH * 40 + LIGATURE * 3 + "  spaces   kept  " + "caf\u00e9 \u3316\n") * 30


# One xdist worker runs the whole file, so its module fixtures are built once, not once per worker:
# Qwen 3 imported and a Unigram model trained, ~5 s (docs/decisions.md, "The suite's time on CI, again").
pytestmark = pytest.mark.xdist_group("measured-texts")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    directory = tmp_path_factory.mktemp("measured")
    registry = Registry.open(directory / "models", create=True)
    (directory / "tokenizer.json").write_text(json.dumps(qwen3_tokenizer_json()), encoding="utf-8")
    import_files(registry, [directory / "tokenizer.json"], name="qwen3", provenance={"kind": "imported", "command": "test"})
    registry.publish("unigram", payload=model_bytes("unigram"), payload_format="sentencepiece_model",
                     provenance={"kind": "imported"})
    return ServedModels(registry)


def _service(served) -> TokenizerService:
    return TokenizerService(served, Limits(), admission=WorkAdmission(1 << 30))


@pytest.mark.parametrize("operation", ["count", "encode"])
def test_a_measured_unigram_text_is_normalized_once(served, monkeypatch, operation):
    encoding = served.load("unigram").encoding
    normalizing = []  # the texts the engine normalized and encoded (its path from the text itself)
    for name in ("_count_text", "_encode_text", "_encode_raw"):
        original = getattr(encoding, name)
        monkeypatch.setattr(encoding, name, lambda text, original=original: normalizing.append(text) or original(text))
    data = UNIGRAM_TEXT.encode()  # raw bytes: sentencepiece's encoding of their text (valid UTF-8 here)
    with recording():
        result = getattr(_service(served), operation)("unigram", [UNIGRAM_TEXT, data])
    expected = oracle("unigram").encode(UNIGRAM_TEXT)
    if operation == "count":
        assert result.counts == [len(expected)] * 2
    else:
        assert result.ids == [expected] * 2
    assert normalizing == []  # both measured, and taken as measured


def test_a_measured_nfc_text_is_normalized_once(served, monkeypatch):
    normalized = []
    nfc = text_pipeline.nfc
    monkeypatch.setattr(text_pipeline, "nfc", lambda text: normalized.append(len(text)) or nfc(text))
    # Vietnamese (NFC must look at its combining marks) and U+1D160 (three characters once normalized): 240 KB,
    # large at three times its size
    text = ("Ti\u00ea\u0301ng Vi\u00ea\u0323t c\u00f3 d\u00e2\u0301u. \U0001d160 " * 4_000)
    with recording():
        result = _service(served).encode("qwen3", [text])
    _, reference = model_and_reference("qwen3")
    assert result.ids == [reference(text)]
    assert sum(normalized) == len(text)  # the measurement's pass only (before: the measurement's, then the encode's)


def test_only_what_fits_the_scope_is_kept_and_nothing_outlives_it(served):
    encoding = served.load("unigram").encoding
    text = ENGLISH * 200  # 15.6 KB: ~17 KB once normalized
    with keeping_normalized(10_000) as keeper:  # too little room: measured by slices, nothing held
        small_room = encoding.working_text_bytes(text)
        assert kept_normalized(text, encoding._core) is None and keeper.room == 10_000
    with keeping_normalized(1 << 20) as keeper:
        measured = encoding.working_text_bytes(text)
        kept = kept_normalized(text, encoding._core)
        assert kept == encoding._core.normalize(text) and keeper.room == (1 << 20) - len(kept)
        assert kept_normalized(text[:-1] + text[-1], encoding._core) is None  # an equal text, another object
        assert encoding.encode(text) == oracle("unigram").encode(text)
    assert measured == len(kept) + 1024 <= small_room  # exact (+ the slack), within the slices' bound
    assert kept_normalized(text, encoding._core) is None  # dropped with the scope
