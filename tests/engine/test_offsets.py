"""encode_with_offsets: per-token character and byte spans, held to tiktoken's decode_with_offsets and to an
independent reference, on every family and on hostile text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import edge_cases
from tests.engine._budget_support import (
    ATOMS,
    FAMILY_NAMES,
    OPENAI_NAMES,
    family,
    hostile_text,
    oracle,
    repaired_boundaries,
)
from tokend.engine import Encoding
from tokend.engine._alignment import align
from tokend.errors import DisallowedSpecialTokenError, OffsetsUnavailableError

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def has_surrogate_pair(text: str) -> bool:
    return any("\ud800" <= high <= "\udbff" and "\udc00" <= low <= "\udfff" for high, low in zip(text, text[1:]))


def check_offsets(encoding, text: str, **policy) -> None:
    """The definitions of the offsets module, computed here from the token bytes alone."""
    result = encoding.encode_with_offsets(text, **policy)
    assert result.ids == encoding.encode(text, **policy)
    token_bytes = [encoding.decode_single_token_bytes(token) for token in result.ids]
    boundaries = repaired_boundaries(text)  # byte offset -> index in text, at character boundaries
    ordered = sorted(boundaries)
    offset = 0
    for index, token in enumerate(token_bytes):
        start, end = offset, offset + len(token)
        assert (result.byte_starts[index], result.byte_ends[index]) == (start, end)
        # the smallest run of whole characters that holds [start, end)
        floor = max(byte for byte in ordered if byte <= start)
        ceiling = min(byte for byte in ordered if byte >= end) if end > start else floor
        assert (result.starts[index], result.ends[index]) == (boundaries[floor], boundaries[ceiling]), (index, token)
        offset = end
    assert offset == ordered[-1]  # the tokens spell the whole (repaired) text
    assert result.spans() == list(zip(result.starts, result.ends)) and len(result) == len(result.ids)


@pytest.mark.parametrize("name", FAMILY_NAMES)
@SETTINGS
@given(text=hostile_text())
def test_offsets_follow_the_definition_on_hostile_text(name, text):
    check_offsets(family(name), text)


@pytest.mark.parametrize("name", OPENAI_NAMES)
@SETTINGS
@given(text=hostile_text())
def test_starts_are_tiktokens_decode_with_offsets(name, text):
    ours = family(name).encode_with_offsets(text)
    theirs = oracle(name)
    assert ours.ids == theirs.encode(text)
    decoded, offsets = theirs.decode_with_offsets(ours.ids)
    if not has_surrogate_pair(text):  # then the caller's string and tiktoken's repaired text index alike
        assert list(ours.starts) == offsets
    decoded_bytes = decoded.encode("utf-8")
    for index in range(len(ours)):
        assert decoded_bytes[ours.byte_starts[index] : ours.byte_ends[index]] == theirs.decode_single_token_bytes(ours.ids[index])


@pytest.mark.parametrize("name", OPENAI_NAMES)
def test_corpus_edge_cases_match_tiktoken(name):
    theirs = oracle(name)
    for text in edge_cases():
        ours = family(name).encode_with_offsets(text, disallowed_special=())
        assert list(ours.starts) == theirs.decode_with_offsets(ours.ids)[1]
        check_offsets(family(name), text, disallowed_special=())


def test_a_token_holding_part_of_a_character_covers_it():
    encoding = family("cl100k_base")
    text = "a👩\u200d👧b"
    result = encoding.encode_with_offsets(text)
    assert len(result) > len(text)  # the emoji are split into byte tokens
    for index in range(len(result)):
        start, end = result.starts[index], result.ends[index]
        piece = encoding.decode_single_token_bytes(result.ids[index])
        assert end > start and piece in text[start:end].encode("utf-8")


def test_surrogate_pairs_index_the_callers_string():
    encoding = family("cl100k_base")
    text = "a\ud83d\ude00b\ud800c"  # a pair (two indexes, one character) and a lone surrogate
    result = encoding.encode_with_offsets(text)
    assert result.ids == oracle("cl100k_base").encode(text)
    assert max(result.ends) == len(text) == 6
    emoji = [index for index in range(len(result)) if result.starts[index] == 1]
    assert emoji and all(result.ends[index] == 3 for index in emoji)  # both code units of the pair
    check_offsets(encoding, text)


def test_special_tokens_are_one_span_each():
    encoding = family("cl100k_base")
    text = "hi<|endoftext|>there"
    result = encoding.encode_with_offsets(text, allowed_special="all")
    special = result.ids.index(encoding.eot_token)
    assert (result.starts[special], result.ends[special]) == (2, 15)
    with pytest.raises(DisallowedSpecialTokenError):
        encoding.encode_with_offsets(text)
    check_offsets(encoding, text, disallowed_special=())


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_one_megabyte_of_hostile_text(name):
    encoding = family(name)
    text = ("".join(ATOMS) * 2000)[:1_000_000]
    result = encoding.encode_with_offsets(text)
    assert result.ids == encoding.encode(text)
    assert result.ends[-1] == len(text) and result.starts[0] == 0
    assert all(a <= b for a, b in zip(result.starts, result.starts[1:]))
    assert all(result.byte_ends[i] == result.byte_starts[i + 1] for i in range(0, len(result) - 1, 997))


def test_empty_text():
    result = family("o200k_base").encode_with_offsets("")
    assert (result.ids, result.spans(), result.byte_spans()) == ([], [], [])


def test_text_must_be_a_str():
    with pytest.raises(TypeError, match="str"):
        family("cl100k_base").encode_with_offsets(b"bytes")


class Lowercasing:
    """A family whose normalizer rewrites text (lower case): its tokens do not spell the input."""

    name = "lowercasing"

    def __init__(self, inner: Encoding) -> None:
        self.inner = inner
        self.n_vocab = inner.n_vocab

    def encode(self, text, **policy):
        return self.inner.encode(text.lower(), **policy)

    def token_surfaces(self, tokens, *, at_start=True):
        return self.inner.token_surfaces(tokens, at_start=at_start)


def test_a_family_that_rewrites_text_has_no_offsets():
    from tokend.engine.offsets import encode_with_offsets

    family_ = Lowercasing(family("cl100k_base"))
    assert encode_with_offsets(family_, "already lower").spans() == [(0, 7), (7, 13)]
    with pytest.raises(OffsetsUnavailableError) as caught:
        encode_with_offsets(family_, "lower then Upper")
    assert caught.value.position == 11 and caught.value.model == "lowercasing"
    assert isinstance(caught.value, ValueError) and "rewrites" in str(caught.value)


@given(text=st.text(max_size=30), cut=st.integers(0, 40))
@settings(max_examples=60, deadline=None)
def test_native_align_reports_where_surfaces_depart(text, cut):
    surfaces = [char.encode("utf-8") for char in text]
    table: list = []
    assert isinstance(align(text, list(range(len(text))), table, surfaces), tuple)
    if text:
        index = cut % len(text)
        wrong = surfaces[:index] + [b"\xff"] + surfaces[index + 1 :]
        assert align(text, list(range(len(text))), table, wrong) == index
        assert align(text, list(range(len(text) - 1)), table, surfaces[:-1]) == len(text) - 1  # a proper prefix


def test_native_align_rejects_bad_arguments():
    with pytest.raises(TypeError):
        align(b"not str", [], [], [])
    with pytest.raises(TypeError):
        align("x", (1,), [], [])
    with pytest.raises(ValueError, match="lead"):
        align("x", [], [], [b"x"])
    with pytest.raises(TypeError, match=r"lead\[0\]: expected bytes, got str"):
        align("x", [0], [], ["x"])
    assert align("ab", [0, 5, -1], [b"a"], []) == 1  # ids without a surface depart from the text


def test_tokenizer_json_models_that_rewrite_text_have_no_offsets():
    # A ByteLevel pre-tokenizer with add_prefix_space puts a space in front of the text, an NFC normalizer
    # composes "e" + U+0301: the tokens then spell other text, and the budget operations say so.
    from support.tokenizer_json import gpt2_tokenizer_json
    from tokend.engine import ByteLevelModel, parse_tokenizer_json

    prefixed = Encoding.from_model(parse_tokenizer_json(gpt2_tokenizer_json(add_prefix_space=True), name="gpt2-prefix").model)
    assert prefixed.decode(prefixed.encode("hello")) == " hello"
    with pytest.raises(OffsetsUnavailableError) as caught:
        prefixed.encode_with_offsets("hello world")
    assert caught.value.position == 0 and caught.value.model == "gpt2-prefix"
    plain = family("hf-gpt2").model
    nfc = Encoding.from_model(ByteLevelModel("gpt2-nfc", vocabulary=plain.vocabulary, pre_tokenizer=plain.pre_tokenizer,
                                             added_tokens=plain.added_tokens, merges=plain.merges, normalizer="NFC"))
    check_offsets(nfc, "caf\u00e9 au lait")  # text already in NFC: the tokens spell it
    with pytest.raises(OffsetsUnavailableError) as caught:
        nfc.truncate("cafe\u0301 au lait", 2)
    assert caught.value.position == 3
