"""Mistral's Tekken (tekken.json): byte-identical ids to mistral-common's Tekkenizer (the oracle) on the
file it ships (tekken_240718.json, Mistral NeMo's), and the files it refuses."""

from __future__ import annotations

import base64
import functools
import json
import time
from pathlib import Path

import mistral_common
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mistral_common.tokens.tokenizers.base import SpecialTokenPolicy
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

from tests.corpus import corpus_texts, edge_cases
from tokend.engine import Encoding, read_tekken_json
from tokend.errors import DisallowedSpecialTokenError, ModelFormatError

TEKKEN = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"


@functools.lru_cache(maxsize=None)
def pair() -> tuple[Encoding, Tekkenizer]:
    parsed = read_tekken_json(TEKKEN.read_bytes(), name="mistral-nemo")
    return Encoding.from_model(parsed.model), Tekkenizer.from_file(TEKKEN)


def test_vocabulary_matches_mistral_common():
    enc, oracle = pair()
    assert enc.n_vocab == oracle.n_words == 131072
    assert enc.special_tokens["<s>"] == oracle.bos_id and enc.special_tokens["</s>"] == oracle.eos_id
    assert enc.special_tokens["[INST]"] == oracle.get_special_token("[INST]")
    assert enc.special_tokens["<SPECIAL_999>"] == 999 and len(enc.special_tokens) == oracle.num_special_tokens
    parsed = read_tekken_json(TEKKEN.read_bytes(), name="mistral-nemo")
    assert (parsed.bos_token, parsed.eos_token) == ("<s>", "</s>")


def test_corpus_matches_mistral_common():
    enc, oracle = pair()
    texts = corpus_texts(limit_bytes=150_000) + edge_cases()
    for text in texts:
        expected = oracle.encode(text, bos=False, eos=False)
        assert enc.encode(text, disallowed_special=()) == expected, text[:200]
        assert enc.count(text, disallowed_special=()) == len(expected)
        assert enc.decode(expected) == oracle.decode(expected, special_token_policy=SpecialTokenPolicy.KEEP)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=150)
       | st.lists(st.sampled_from(["a", "A", "Ab", " ", "\n", "\r\n", "'s", "1", "12", "😀", "é", "中", "/", "!\n", "[INST]", "<s>"]), max_size=40).map("".join))
def test_hypothesis_text_matches_mistral_common(text):
    enc, oracle = pair()
    assert enc.encode(text, disallowed_special=()) == oracle.encode(text, bos=False, eos=False)


def test_special_tokens_follow_tiktokens_policy():
    # mistral-common reads "[INST]" in text as text; tokend refuses it unless the caller says how to read it.
    enc, oracle = pair()
    text = "[INST] hi [/INST]"
    assert enc.encode(text, disallowed_special=()) == oracle.encode(text, bos=False, eos=False)
    with pytest.raises(DisallowedSpecialTokenError, match=r"\[INST\]"):
        enc.encode(text)
    assert enc.encode(text, allowed_special="all") == [3] + oracle.encode(" hi ", bos=False, eos=False) + [4]


def _file(**changes) -> bytes:
    document = {"config": {"pattern": r"\S+|\s+", "num_vocab_tokens": 300, "default_vocab_size": 1300,
                           "default_num_special_tokens": 1000, "version": "v3"},
                "vocab": [{"rank": i, "token_bytes": base64.b64encode(bytes([i])).decode(), "token_str": None} for i in range(256)]
                + [{"rank": 256 + i, "token_bytes": base64.b64encode(b"t%d" % i).decode(), "token_str": None} for i in range(44)]}
    document.update(changes)
    return json.dumps(document).encode()


def test_a_small_file_loads_with_ids_shifted_by_the_special_slots():
    enc = Encoding.from_model(read_tekken_json(_file(), name="tiny").model)
    assert enc.encode_ordinary("t1 x") == [1000 + 257, 1000 + 32, 1000 + ord("x")]
    assert enc.n_vocab == 1300


@pytest.mark.parametrize("changes, fragment", [
    ({"config": {"pattern": "x"}}, "default_vocab_size"),
    ({"config": {"pattern": "x", "default_vocab_size": 1300, "default_num_special_tokens": 1000, "version": "seven"}}, "version"),
    ({"config": {"pattern": "x", "default_vocab_size": 1300, "default_num_special_tokens": 1000, "version": "v11"}}, "special_tokens"),
    ({"config": {"pattern": "x", "default_vocab_size": 1300, "default_num_special_tokens": 10, "version": "v3"}}, "slots"),
    ({"vocab": [{"rank": 0, "token_bytes": "AA=="}]}, "vocab entries"),
    ({"special_tokens": [{"rank": 1, "token_str": "<s>", "is_control": True}]}, "ranks 0, 1, 2"),
    ({"config": {"pattern": "x", "default_vocab_size": 1300, "default_num_special_tokens": 0, "version": "v3"}},
     "default_num_special_tokens = 0 is outside"),
    # 4,000,000 slots in a small file: refused by name before a filler is made (it made 1 GB first)
    ({"config": {"pattern": "x", "default_vocab_size": 4_000_300, "default_num_special_tokens": 4_000_000, "version": "v3"}},
     "default_num_special_tokens = 4000000 is outside 1..65,536"),
    ({"config": {"pattern": "x", "default_vocab_size": 1300, "default_num_special_tokens": 60_000, "version": "v3"}},
     "vocab entries"),
])
def test_bad_files_are_refused(changes, fragment):
    started = time.perf_counter()
    with pytest.raises(ModelFormatError, match=fragment):
        read_tekken_json(_file(**changes), name="bad")
    assert time.perf_counter() - started < 2.0  # generous: no filler tokens are made for a file refused
