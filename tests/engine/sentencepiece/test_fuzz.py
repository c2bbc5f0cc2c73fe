"""Hypothesis against sentencepiece: random text (every script, emoji, whitespace and control characters,
the `▁` mark, user-defined and special-token text) and random bytes, through the native core, the Python
reference and the normalizer alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tokend.engine.sentencepiece.reference import ReferenceEncoder

from tests.engine.sentencepiece.models import oracle, ours

FUZZ_MODELS = (
    "mistral_v3", "llama2_like", "nmt_nfkc", "nfkc_cf", "suffix", "symbols", "whitespace_runs", "unused", "ties",
    "unigram_symbols", "kyoto_unigram",
)

_fragments = st.sampled_from(
    [" ", "  ", "\t", "\n", "\u2581", "\u3000", "12", "foo", "foobar", "<tool>", "<s>", "[INST]", "😀", "e\u0301", "ｆ", "ﬁ"]
)
texts = st.lists(st.one_of(st.text(max_size=12), _fragments), max_size=12).map("".join)


@pytest.mark.parametrize("name", FUZZ_MODELS)
def test_random_text(name):
    enc, reference, sp = ours(name), ours(name, native=False), oracle(name)

    @settings(max_examples=250, deadline=None, derandomize=True)
    @given(texts)
    def check(text):
        want = sp.encode(text)
        assert enc.encode_ordinary(text) == want
        assert enc.count_ordinary(text) == len(want)
        assert reference.encode_ordinary(text) == want
        assert enc.decode(want) == sp.decode(want)

    check()


@pytest.mark.parametrize("name", ("mistral_v1", "nmt_nfkc", "symbols", "unigram"))
def test_random_bytes(name):
    enc, sp = ours(name), oracle(name)

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(st.binary(max_size=40))
    def check(data):
        assert enc.encode_bytes(data) == sp.encode(data)
        assert enc._core.normalize(data) == sp.normalize(data)

    check()


@pytest.mark.parametrize("name", ("botchan_bpe", "nfkc_cf", "symbols", "suffix", "no_escape"))
def test_native_normalizer_equals_reference_and_sentencepiece(name):
    enc, sp = ours(name), oracle(name)
    reference = ReferenceEncoder(enc.model).normalizer

    @settings(max_examples=200, deadline=None, derandomize=True)
    @given(texts)
    def check(text):
        data = text.encode("utf-8")
        assert enc._core.normalize(data) == reference.normalize(data)
        assert enc.normalize(text) == sp.normalize(text)

    check()


# Stops of the normalizer's ASCII runs (copied 16 bytes a step where no rule starts with an ASCII byte): a space,
# runs of them, a tab (a rule in nmt_nfkc), non-ASCII characters of 2, 3 and 4 bytes, the mark itself.
_STOPS = (" ", "  ", "\t", "é", "\u2581", "😀", "\u3000")


@pytest.mark.parametrize("name", ("llama2_like", "mistral_v1", "nmt_nfkc", "suffix", "no_escape", "whitespace_runs"))
def test_ascii_runs_around_every_step_boundary(name):
    """A stop at every offset of a run of 1-40 ASCII characters, at the end of the text and inside it: the
    bulk copy must keep exactly the bytes before the stop, whatever the run's length modulo 16."""
    enc, sp = ours(name), oracle(name)
    word = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123"
    for length in range(1, len(word) + 1):
        for stop in _STOPS:
            for text in (word[:length] + stop, word[:length] + stop + word[: 41 - length], stop + word[:length]):
                assert enc._core.normalize(text.encode()) == sp.normalize(text).encode(), (name, text)
                assert enc.encode_ordinary(text) == sp.encode(text), (name, text)


@pytest.mark.parametrize("name", ("llama2_like", "mistral_v1", "nmt_nfkc", "suffix", "whitespace_runs"))
def test_runs_of_any_characters_around_every_step_boundary(name):
    """Where no rule starts with any byte (an identity normalizer), runs of characters of 1-4 bytes are
    copied 16 bytes a step up to the next space: every length of such a run from 1 to 40 characters, then a
    space or the end, then more text, never cut inside a character."""
    enc, sp = ours(name), oracle(name)
    word = "é中😀aж\u0301ñ日😀b" * 4  # 1-4 bytes a character, a combining mark among them
    for length in range(1, 41):
        for stop in (" ", "  ", "\t", "\n", ""):
            for text in (word[:length] + stop + "tail", "x" + word[:length] + stop, stop + word[:length] + " end"):
                assert enc._core.normalize(text.encode()) == sp.normalize(text).encode(), (name, text)
                assert enc.encode_ordinary(text) == sp.encode(text), (name, text)
