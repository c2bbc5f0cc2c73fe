"""truncate: the kept text's own encoding fits the budget, is what comes back, and the next cut would not fit
(maximal); on every family, on hostile text, with tiktoken as the encoder of record for the OpenAI ones."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine._budget_support import (
    FAMILY_NAMES,
    OPENAI_NAMES,
    family,
    hostile_text,
    oracle,
    overshooting,
    overshooting_text,
    reference_cuts,
)
from tokend.errors import DisallowedSpecialTokenError, InvalidBudgetError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_truncation(encode, text, result, max_tokens, side, token_bytes):
    """The definitions of the truncation module, with `encode` as the encoder of record."""
    assert result.text == text[result.start : result.end]
    if side == "right":
        assert result.start == 0
        kept_at, keep = result.end, lambda cut: text[:cut]
    else:
        assert result.end == len(text)
        kept_at, keep = result.start, lambda cut: text[cut:]
    assert result.ids == encode(result.text)  # its own encoding, not a slice of the whole one
    assert len(result.ids) <= max_tokens
    assert result.total_tokens == len(encode(text))
    cuts = reference_cuts(text, token_bytes)
    assert kept_at in cuts  # a token boundary that is a character boundary
    if len(encode(text)) <= max_tokens:
        assert (result.start, result.end) == (0, len(text)) and not result.truncated
        return
    assert result.truncated
    # maximal: the next cut point (the next token's text kept as well) does not fit
    following = cuts[cuts.index(kept_at) + (1 if side == "right" else -1)]
    assert len(encode(keep(following))) > max_tokens


@pytest.mark.parametrize("name", FAMILY_NAMES)
@pytest.mark.parametrize("side", ["right", "left"])
@SETTINGS
@given(text=hostile_text(), budget=st.integers(0, 40))
def test_truncation_invariants_on_every_family(name, side, text, budget):
    encoding = family(name)
    result = encoding.truncate(text, budget, side)
    token_bytes = encoding.decode_tokens_bytes(encoding.encode(text))
    check_truncation(encoding.encode, text, result, budget, side, token_bytes)


@pytest.mark.parametrize("name", OPENAI_NAMES)
@pytest.mark.parametrize("side", ["right", "left"])
@SETTINGS
@given(text=hostile_text(), budget=st.integers(0, 40))
def test_truncation_held_to_tiktoken(name, side, text, budget):
    theirs = oracle(name)
    result = family(name).truncate(text, budget, side)
    token_bytes = theirs.decode_tokens_bytes(theirs.encode(text))
    check_truncation(theirs.encode, text, result, budget, side, token_bytes)


def test_bpe_is_not_prefix_stable_and_truncation_holds_the_own_encoding():
    theirs = oracle("cl100k_base")
    text = "Dec  1"
    whole = theirs.encode(text)  # 'Dec', ' ', ' ', '1'
    assert [theirs.decode_single_token_bytes(token) for token in whole] == [b"Dec", b" ", b" ", b"1"]
    # the first three tokens of the whole spell "Dec  ", but "Dec  " on its own is two tokens
    assert theirs.encode("Dec  ") != whole[:3] and len(theirs.encode("Dec  ")) == 2
    result = family("cl100k_base").truncate(text, 2)
    assert result.text == "Dec  " and result.ids == theirs.encode("Dec  ")  # longer than whole[:2] spells


@pytest.mark.parametrize("side", ["right", "left"])
@SETTINGS
@given(text=overshooting_text(), budget=st.integers(0, 30))
def test_truncation_when_cut_text_needs_more_tokens(side, text, budget):
    """A model where the kept text often re-encodes to more tokens than the whole's grid counted: the search
    walks back (and forward again) until the kept text fits and the next cut does not."""
    encoding = overshooting()
    result = encoding.truncate(text, budget, side)
    check_truncation(encoding.encode, text, result, budget, side, encoding.decode_tokens_bytes(encoding.encode(text)))


def test_the_overshooting_model_overshoots():
    encoding = overshooting()
    assert encoding.encode("xxxxy") == [257, ord("y")]  # the whole: "xxxx" before "y" is one token
    assert encoding.encode("xxxx") == [ord("x")] * 4  # cut before "y": four
    result = encoding.truncate("xxxxy xxxxy", 4)
    assert (result.text, result.ids) == ("xxxxy ", [257, ord("y"), ord(" ")])


@pytest.mark.parametrize("side", ["right", "left"])
def test_special_tokens_are_kept_whole_or_dropped(side):
    encoding = family("cl100k_base")
    text = "one<|endoftext|>two<|endoftext|>three"
    for budget in range(0, 8):
        result = encoding.truncate(text, budget, side, allowed_special="all")
        assert result.ids == encoding.encode(result.text, allowed_special="all")
        assert result.text.count("<|endoftext|>") == result.ids.count(encoding.eot_token)
        assert len(result.ids) <= budget
    with pytest.raises(DisallowedSpecialTokenError):
        encoding.truncate(text, 3)
    plain = encoding.truncate(text, 3, disallowed_special=())
    assert encoding.eot_token not in plain.ids


@pytest.mark.slow
@pytest.mark.parametrize("side", ["right", "left"])
def test_one_megabyte_without_whitespace(side):
    encoding = family("cl100k_base")
    text = "".join(chr(0x61 + (i * 7919) % 26) for i in range(1_000_000))
    total = encoding.count(text)
    result = encoding.truncate(text, total // 2, side)
    assert len(result.ids) <= total // 2 < len(result.ids) + 8
    assert result.ids == encoding.encode(result.text)


def test_searches_with_few_encodes():
    """The grid's guess is checked and the next cut shown not to fit: a handful of encodes, not one per token."""
    encoding = family("cl100k_base")
    calls = []

    class Counting:
        n_vocab = encoding.n_vocab

        def encode(self, text, **policy):
            calls.append(len(text))
            return encoding.encode(text, **policy)

        def encode_ordinary(self, text):
            calls.append(len(text))
            return encoding.encode_ordinary(text)

        def token_surfaces(self, tokens, *, at_start=True):
            return encoding.token_surfaces(tokens, at_start=at_start)

    from tokend.engine.truncation import truncate

    text = "The quick brown fox jumps over the lazy dog. " * 2000
    result = truncate(Counting(), text, 5000)
    assert len(result.ids) <= 5000 and len(calls) <= 5


def test_whole_text_fits_and_empty_text():
    encoding = family("o200k_base")
    result = encoding.truncate("hello world", 100)
    assert (result.text, result.ids, result.total_tokens, result.truncated) == ("hello world", encoding.encode("hello world"), 2, False)
    assert encoding.truncate("", 0).ids == [] and encoding.truncate("", 0, "left").text == ""
    assert encoding.truncate("hello", 0).text == "" and encoding.truncate("hello", 0, "left").text == ""


@pytest.mark.parametrize(
    "arguments, error, argument, fragment",
    [
        ((-1,), InvalidBudgetError, "max_tokens", ">= 0, got -1"),
        ((3, "middle"), InvalidBudgetError, "side", "keep the beginning.*got 'middle'"),
        ((3, "RIGHT"), InvalidBudgetError, "side", "got 'RIGHT'"),
        (("3",), TypeError, None, "max_tokens must be an int, got str"),
        ((True,), TypeError, None, "got bool"),
        ((2.5,), TypeError, None, "got float"),
    ],
)
def test_bad_arguments_are_precise_errors(arguments, error, argument, fragment):
    with pytest.raises(error, match=fragment) as caught:
        family("cl100k_base").truncate("some text", *arguments)
    if argument is not None:
        assert caught.value.argument == argument and isinstance(caught.value, ValueError)
