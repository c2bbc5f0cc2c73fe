"""Byte-identical ids to tiktoken (the oracle) for cl100k_base and o200k_base: published vectors, the
machine-assembled corpus, hypothesis-generated text, and decode(encode(x)) == x."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import corpus_by_kind, edge_cases

# minbpe's published vector for GPT-4 (cl100k_base).
MINBPE_TEXT = "hello123!!!? (안녕하세요!) 😉"
MINBPE_IDS = [15339, 4513, 12340, 30, 320, 31495, 230, 75265, 243, 92245, 16715, 57037]

_CORPUS = corpus_by_kind(limit_bytes=120_000)


def test_minbpe_published_vector(cl100k):
    assert cl100k.encode(MINBPE_TEXT) == MINBPE_IDS
    assert cl100k.count(MINBPE_TEXT) == len(MINBPE_IDS)
    assert cl100k.decode(MINBPE_IDS) == MINBPE_TEXT


def test_hello_world_hand_checked(cl100k):
    # tiktoken's README example for cl100k_base.
    assert cl100k.encode("hello world") == [15339, 1917]


@pytest.mark.parametrize("kind", sorted(_CORPUS))
def test_corpus_matches_tiktoken(enc, oracle, kind):
    texts = _CORPUS[kind]
    assert texts, f"corpus kind {kind} is empty on this machine"
    for text in texts:
        expected = oracle.encode_ordinary(text)
        assert enc.encode_ordinary(text) == expected, text[:200]
        assert enc.count_ordinary(text) == len(expected)
        assert enc.decode(expected) == text


def test_corpus_as_one_text_with_all_specials_allowed(enc, oracle):
    text = "<|endoftext|>".join(_CORPUS["english"][:3] + _CORPUS["code"][:3] + _CORPUS["multilingual"][:10])
    expected = oracle.encode(text, allowed_special="all")
    assert enc.encode(text, allowed_special="all") == expected
    assert enc.count(text, allowed_special="all") == len(expected)


def test_batch_methods_match(enc, oracle):
    texts = edge_cases()
    assert enc.encode_ordinary_batch(texts) == oracle.encode_ordinary_batch(texts)
    safe = [text for text in texts if "<|" not in text]
    expected = oracle.encode_batch(safe)
    assert enc.encode_batch(safe) == expected
    assert enc.count_batch(safe) == [len(ids) for ids in expected]
    assert enc.decode_batch(expected) == oracle.decode_batch(expected)
    assert enc.decode_bytes_batch(expected) == oracle.decode_bytes_batch(expected)


def test_surrogates_are_fixed_up_like_tiktoken(enc, oracle):
    for text in ["lone \ud800 surrogate", "pair \ud83d\ude00 joined", "\udfff", "a\ud800<|endoftext|>"]:
        assert enc.encode(text, allowed_special="all") == oracle.encode(text, allowed_special="all")
        assert enc.encode_ordinary(text) == oracle.encode_ordinary(text)
        assert enc.count_ordinary(text) == len(oracle.encode_ordinary(text))


@pytest.mark.parametrize(
    "data",
    [b"hello \xff world", b"\xff", b"caf\xc3", b"abc  \n\xe2\x82", b"\x80\x81\x82" * 10, b"ok", b"", b"  \t\xc0"],
)
def test_encode_bytes_matches_tiktoken(enc, oracle, data):
    assert enc.encode_bytes(data) == oracle._encode_bytes(data)
    assert enc.decode_bytes(enc.encode_bytes(data)) == data


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=200
) | st.lists(
    st.sampled_from(["a", "A", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL", "’", "1", "123", "😀", "é", "中", "!", "?", ".", "\u00a0", "\u3000", "\x85", "<|endoftext|>", "ſ", "İ"]),
    max_size=60,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_text)
def test_hypothesis_text_matches_tiktoken(enc, oracle, text):
    expected = oracle.encode_ordinary(text)
    assert enc.encode_ordinary(text) == expected
    assert enc.count_ordinary(text) == len(expected)
    assert enc.encode(text, allowed_special="all") == oracle.encode(text, allowed_special="all")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_decode_encode_round_trip(enc, text):
    assert enc.decode(enc.encode(text, disallowed_special=())) == text
    assert enc.decode_bytes(enc.encode_ordinary(text)) == text.encode("utf-8")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=100))
def test_encode_bytes_round_trip_and_matches(enc, oracle, data):
    assert enc.decode_bytes(enc.encode_bytes(data)) == data
    assert enc.encode_bytes(data) == oracle._encode_bytes(data)


_ascii_text = st.text(alphabet=st.characters(max_codepoint=127), max_size=200) | st.lists(
    st.sampled_from(["a", "Z", "aB", " ", "  ", "\n", "\r\n", "\r", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "'s", "'T", "'ll", "'", "7", "123", "!", "/", ".", "_"]),
    max_size=60,
).map("".join)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_ascii_text)
def test_ascii_fast_path_matches_tiktoken(enc, oracle, text):
    # ASCII text with the characters where the patterns are subtle (contractions, CR/LF, \x1c-\x1f, runs).
    assert enc.encode_ordinary(text) == oracle.encode_ordinary(text)
    assert enc.count_ordinary(text) == len(oracle.encode_ordinary(text))


_spacey_text = st.lists(
    st.sampled_from(["a", "Bc", "1", " ", "  ", "   ", "\n", "\n\n", "\t", "\r\n", "\u00a0", "\u3000", "\x0b", "\x1c", "'s", "(", "/", ".", "中", "😀", "é"]),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_spacey_text)
def test_whitespace_runs_match_tiktoken(enc, oracle, text):
    # Whitespace runs: the scanners' backtracking cases (last space of a run, newlines, end of text).
    expected = oracle.encode_ordinary(text)
    assert enc.encode_ordinary(text) == expected
    assert enc.count_ordinary(text) == len(expected)


@pytest.mark.parametrize(
    "texts",
    [
        ["x foo\n", "x foo\n y", "x foo\n"],  # the same part last (end-of-text semantics) and not last
        ["a  ", "a   b", "a  ", "a\t \n  b  "],
        ["z zz\n    ", "z zz\n    return", "z zz\n    "],
    ],
)
def test_cached_pieces_keep_end_of_text_semantics(oracle, texts):
    # Whitespace at the end of a text splits differently from the same whitespace before a word; a cache
    # must never answer one with the other.
    from tokend.engine import Encoding

    fresh = Encoding(oracle.name, pat_str=oracle._pat_str, mergeable_ranks=oracle._mergeable_ranks, special_tokens={})
    for text in texts * 2:
        assert fresh.encode_ordinary(text) == oracle.encode_ordinary(text), repr(text)


def test_encode_to_buffer_matches_tiktoken(enc, oracle):
    # The server's Encode path: a uint32 memoryview from the core's buffer where it can, else encode's list.
    texts = _CORPUS["multilingual"][:5] + _CORPUS["code"][:3] + ["a<|endoftext|>b " * 3, "x\ud800y", ""]
    for text in texts:
        got = enc.encode_to_buffer(text, disallowed_special=())
        assert list(got) == oracle.encode(text, disallowed_special=()), repr(text[:80])
        assert list(enc.encode_to_buffer(text, allowed_special="all")) == oracle.encode(text, allowed_special="all")
    assert enc.encode_to_buffer("hello world").format == "I"
    with pytest.raises(ValueError):
        enc.encode_to_buffer("a<|endoftext|>b")


def test_encode_to_numpy_matches_tiktoken(enc, oracle):
    # The ordinary path reads the native core's buffer directly; allowed specials and lone surrogates too.
    import numpy

    texts = _CORPUS["multilingual"][:5] + ["a<|endoftext|>b " * 3]
    # Lone surrogates: tiktoken's encode_to_numpy raises UnicodeEncodeError where its encode repairs them;
    # ours repairs them like encode (a documented deviation), so compare with tiktoken's encode.
    assert enc.encode_to_numpy("x\ud800y").tolist() == oracle.encode("x\ud800y")
    for text in texts:
        expected = oracle.encode_to_numpy(text, allowed_special="all")
        got = enc.encode_to_numpy(text, allowed_special="all")
        assert got.dtype == numpy.uint32 and got.tolist() == expected.tolist()
        assert enc.encode_to_numpy(text, disallowed_special=()).tolist() == oracle.encode_to_numpy(text, disallowed_special=()).tolist()
    with pytest.raises(ValueError):
        enc.encode_to_numpy("a<|endoftext|>b")
    custom = type(enc)("custom", pat_str=r"\S+|\s+", mergeable_ranks=oracle._mergeable_ranks, special_tokens={})
    assert custom.encode_to_numpy("hello  world").tolist() == custom.encode("hello  world")
