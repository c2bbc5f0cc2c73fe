"""0 mismatches against sentencepiece: every model of models.py × English, code, many scripts, hand-written
edge cases (emoji, whitespace runs, digits, characters outside the vocabulary, special-token text).

`encode_ordinary` and `count_ordinary` are compared with `SentencePieceProcessor.encode`, `decode` of the oracle's
ids with `SentencePieceProcessor.decode`; the Python reference encoder is held to the same oracle on a smaller
sample (it is slow). Texts go in as they are, whole documents of ~8 kB, and line by line (sentencepiece's
usual unit), so the dummy prefix and whitespace handling are exercised at every line start.
"""

from __future__ import annotations

from functools import lru_cache

import pytest

from tests.corpus import corpus_by_kind, edge_cases
from tests.engine.sentencepiece.models import ours as load_ours

KINDS = ("english", "code", "multilingual")

EXTRA_EDGES = [
    "<s>Hello</s> <unk> [INST] hi [/INST] <0x0A> <pad> <ctrl> <tool>foo foobar ab 12 😀",
    "\u2581 \u2581\u2581 a\u2581b \u2581the the\u2581",  # the whitespace mark itself in the input
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ ① ㈱ ﬁ ﬀ Ⅻ ㎏ ﷺ ¼",  # NFKC rewrites (one rule even expands to many words)
    "zero\u200bwidth\u200djoiner\ufeffbom \u00ad soft hyphen",
    "tab\tnew\nline\r\ncr\rvt\x0bff\x0cnul\x00end",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕞𝕒𝕥𝕙 𓀀𓀁 𐍈 \U0010fffd \ue000 private",
    "\ufffd replacement \ufffd\ufffd",
    "    leading and trailing    ",
    "a" * 1000,
    "1234567890" * 30,
    "ꙮ ᚠᛇᚻ ⠁⠃⠉ ߒߞߏ ᓀᐦᐃᔭᐍᐏᐣ ꦗꦮ ᥖᥭᥰ",  # scripts a 2,000-piece vocabulary leaves out
]


@lru_cache(maxsize=None)
def _texts(kind: str, limit_bytes: int) -> tuple[str, ...]:
    if kind == "edge":
        return tuple(edge_cases() + EXTRA_EDGES)
    return tuple(corpus_by_kind(limit_bytes=limit_bytes)[kind])


def _lines(texts) -> list[str]:
    return [line for text in texts for line in text.split("\n")]


def _mismatches(encode, oracle, texts) -> list[tuple[str, list[int], list[int]]]:
    bad = []
    for text in texts:
        got, want = encode(text), oracle.encode(text)
        if got != want:
            bad.append((text[:200], got[:40], want[:40]))
    return bad


@pytest.mark.parametrize("kind", KINDS + ("edge",))
def test_encode_equals_sentencepiece(ours, oracle, kind):
    texts = _texts(kind, 60_000)
    assert _mismatches(ours.encode_ordinary, oracle, texts) == []
    assert _mismatches(ours.encode_ordinary, oracle, _lines(texts)) == []


@pytest.mark.parametrize("kind", KINDS + ("edge",))
def test_count_equals_len_of_sentencepiece(ours, oracle, kind):
    texts = _texts(kind, 60_000)
    assert [ours.count_ordinary(text) for text in texts] == [len(oracle.encode(text)) for text in texts]


@pytest.mark.parametrize("kind", KINDS + ("edge",))
def test_decode_equals_sentencepiece(ours, oracle, kind):
    texts = _texts(kind, 60_000)
    for text in texts + tuple(_lines(texts[:20])):
        ids = oracle.encode(text)
        assert ours.decode(ids) == oracle.decode(ids), text[:200]


@pytest.mark.parametrize("kind", KINDS + ("edge",))
def test_reference_encoder_equals_sentencepiece(model_name, oracle, kind):
    reference = load_ours(model_name, native=False)
    texts = _texts(kind, 6_000)
    assert _mismatches(reference.encode_ordinary, oracle, texts) == []


def test_encode_bytes_equals_sentencepiece_on_raw_bytes(ours, oracle):
    samples = [b"caf\xc3", b"\xe2\x82A", b"\xff\xfe plain", b"\xed\xa0\x80 surrogate", b"ok \xf0\x9f\x98", b"\xc0\x80"]
    for data in samples:
        assert ours.encode_bytes(data) == oracle.encode(data), data
