"""encode / count under tiktoken's default policy in one core call (`BpeCore.count_unless` / `encode_unless`:
the special tokens' prefixes looked for in the text's UTF-8, then the ids; None sends Encoding to its general
path). Held to tiktoken: a prefix the byte search misses would count a text tiktoken refuses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.errors import DisallowedSpecialTokenError

# one-, two-, three- and four-byte UTF-8 characters around the prefixes' bytes
_ALPHABET = "<|>ab \n\u00e9\u65e5\U0001f600"
_FILLERS = ("a", "\u00e9", "\u65e5", "\U0001f600", " ")


def _prefixes(enc) -> tuple[str, ...]:
    return enc._default_prefixes


def test_the_models_of_tiktoken_take_the_one_call(enc):
    assert enc._core_count_unless is not None and enc._core_encode_unless is not None


@settings(max_examples=300, deadline=None)
@given(text=st.text(_ALPHABET, max_size=150), strings=st.lists(st.text("<|>a\u00e9\u65e5", min_size=1, max_size=4),
                                                                 max_size=6))
def test_the_core_call_is_none_exactly_when_a_string_occurs_and_else_tiktokens_answer(enc, oracle, text, strings):
    strings = tuple(strings)
    expected_none = any(string in text for string in strings)
    count, ids = enc._core.count_unless(text, strings), enc._core.encode_unless(text, strings)
    if expected_none:
        assert count is None and ids is None
    else:
        assert ids == oracle.encode_ordinary(text) and count == len(ids)


def test_a_prefix_at_every_place_of_a_step_and_at_the_end_is_found(enc, oracle):
    # text_find.c's UTF-8 search compares 16 starts a step, then one start at a time to the end of the text
    special = sorted(oracle.special_tokens_set)[0]
    for size in range(0, 40):
        for at in range(0, size + 1):
            for filler in _FILLERS:
                before, after = ("<" * at)[: at // 2] + filler * (at - at // 2), filler * (size - at)
                text = before + special + after  # "<" (the prefix's first byte) dense before it
                with pytest.raises(DisallowedSpecialTokenError):
                    enc.count(text)
                with pytest.raises(DisallowedSpecialTokenError):
                    enc.encode(text)
                assert enc._core.count_unless(text, _prefixes(enc)) is None
                plain = before + "<" + after  # the prefix's first byte alone: no special token
                assert enc.count(plain) == len(oracle.encode(plain)), (size, at, filler)
    assert enc._core.count_unless("<" * 100 + "|", ("<|",)) is None
    assert enc._core.count_unless("<" * 100, ("<|",)) == len(oracle.encode("<" * 100))


def test_texts_the_one_call_leaves_to_the_general_path(enc, oracle):
    prefixes = _prefixes(enc)
    # a lone surrogate (no UTF-8): the general path repairs it as tiktoken does
    assert enc._core.count_unless("a\ud800b", prefixes) is None
    assert enc.encode("a\ud800b") == oracle.encode("a\ud800b")
    assert enc.count("a\ud800b") == len(oracle.encode("a\ud800b"))
    # cl100k_base's prefix "<|" without a special token (o200k_base's two tokens are their own prefixes):
    # plain text, from the general path
    text = "x <|not special|> y"
    assert (enc._core.encode_unless(text, prefixes) is None) == any(prefix in text for prefix in prefixes)
    assert enc.encode(text) == oracle.encode(text) and enc.count(text) == len(oracle.encode(text))
    # what is not a str: the general path's error
    assert enc._core.count_unless(b"bytes", prefixes) is None
    with pytest.raises(TypeError):
        enc.count(b"bytes")


def test_the_strings_are_checked(enc):
    for strings, message in ((["<|"], "strings: expected a tuple"), (("",), "strings[0]: expected a non-empty str"),
                             ((1,), "strings[0]"), (("x",) * 17, "at most 16")):
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            enc._core.count_unless("text", strings)
    with pytest.raises(TypeError):
        enc._core.encode_unless("text")


@pytest.mark.parametrize("name", ["gpt2", "r50k_base", "p50k_base", "p50k_edit", "o200k_harmony"])
def test_the_other_openai_encodings_under_the_default_policy_are_tiktokens(name):
    # gpt2 to p50k_edit look for their tokens whole (three or fewer), o200k_harmony for "<|" (hundreds of them)
    import tiktoken

    from tests.engine.test_openai_encodings import _TEXTS, ours

    enc, oracle = ours(name), tiktoken.get_encoding(name)
    assert enc._core_count_unless is not None
    for text in _TEXTS + [text + " <|endoftext|>" for text in _TEXTS[:20]] + ["<|", "x<|endoftext", "<|endoftext|"]:
        try:
            expected = oracle.encode(text)
        except ValueError:
            with pytest.raises(DisallowedSpecialTokenError):
                enc.count(text)
            with pytest.raises(DisallowedSpecialTokenError):
                enc.encode(text)
            continue
        assert enc.encode(text) == expected, text[:200]
        assert enc.count(text) == len(expected), text[:200]
