"""A str's UTF-8 as the core reads it (native/str_utf8.c): made by the core for one call, ASCII runs 16 bytes of
characters a step, the other steps 8 characters at a time, instead of by CPython's PyUnicode_AsUTF8AndSize, which
keeps it in the str. Held to `str.encode("utf-8")` byte for byte, and encode / count through it to tiktoken."""

from __future__ import annotations

import sys
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.engine import _native

# by CPython's kind of the str they make: 1 (Latin-1), 2 (the BMP: 2- and 3-byte UTF-8), 4 (4-byte UTF-8)
_OTHERS = {
    1: ("\x80", "\u00e9", "\u00ff"),
    2: ("\u00e9", "\u2019", "\u07ff", "\u0800", "\uffff"),
    4: ("\u00e9", "\u2019", "\U00010000", "\U0001f600", "\U0010ffff"),
}


def _fresh(text: str) -> str:
    """An equal str that no one has asked for its UTF-8 (CPython keeps it in the str once made)."""
    return (text + ".")[:-1]


def _utf8_or_none(text: str) -> bytes | None:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return None


@pytest.mark.parametrize("kind", sorted(_OTHERS))
def test_every_character_at_every_place_of_a_step_is_cpythons_utf8(kind):
    # a step is 16 characters (kinds 1 and 2: copied when all are ASCII, else made 8 at a time) or 4 (kind 4: the
    # ASCII before the first other character copied from its low bytes, then the run of others one by one);
    # texts of up to 3 steps, others alone and in runs
    for other in _OTHERS[kind]:
        for size in range(0, 50):
            for at in range(0, size + 1):
                for run in (1, 2, 17):
                    text = "a" * at + other * run + "b" * (size - at)
                    assert _native._str_utf8(_fresh(text)) == text.encode("utf-8"), (kind, other, size, at, run)
    mixed = "".join(_OTHERS[kind]) + "x" * 33 + "".join(reversed(_OTHERS[kind]))
    assert _native._str_utf8(_fresh(mixed * 5)) == (mixed * 5).encode("utf-8")


@pytest.mark.parametrize("kind", [1, 2])
def test_every_mix_of_lengths_in_a_block_is_cpythons_utf8(kind):
    # kinds 1 and 2 make a step that is not all ASCII 8 characters at a time, each character's bytes stored at
    # the running sum of the lengths before it: every sequence of 1-, 2- (and 3-) byte characters over a block
    # of 8, at every offset of the 16-character step, with ASCII or others around it
    # (the others with the fewest and the most bits set: a bit ORed in or masked out shows)
    for letters in [("a", "\u0080"), ("a", "\u00ff")] if kind == 1 else [("a", "\u0080", "\u0800"),
                                                                             ("a", "\u07ff", "\uffff")]:
        blocks = [""]
        for _ in range(8):
            blocks = [block + letter for block in blocks for letter in letters]
        for block in blocks:
            for at in (0, 3, 8, 11):
                for around in ("x", letters[-1]):
                    text = around * at + block + around * (21 - at)
                    assert _native._str_utf8(_fresh(text)) == text.encode("utf-8"), (kind, block, at, around)


@pytest.mark.parametrize("surrogate", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_a_lone_surrogate_has_no_utf8_at_any_place(surrogate):
    for size in range(0, 40):
        for at in range(0, size + 1):
            for filler in ("a", "\u2019", "\U0001f600"):
                text = filler * at + surrogate + filler * (size - at)
                assert _native._str_utf8(_fresh(text)) is None, (size, at, filler)
    assert _native._str_utf8("\ud800\udc00") is None  # a pair of lone surrogates is no character either


@settings(max_examples=2000, deadline=None)
@given(text=st.text(st.characters(codec=None), max_size=80))
def test_any_str_is_cpythons_utf8_or_none(text):
    assert _native._str_utf8(_fresh(text)) == _utf8_or_none(text)


def test_not_a_str_is_refused():
    with pytest.raises(TypeError):
        _native._str_utf8(b"bytes")


def test_texts_of_every_kind_encode_and_count_as_tiktoken(enc, oracle):
    words = ("the", " caf\u00e9", " don\u2019t", " \u00fcber", " na\u00efve", " \U0001f600!", "\n", " \u65e5\u672c",
             "  x", " 12345", "\u00ff\u00ff")
    for kind, others in _OTHERS.items():
        for k in range(60):
            text = "".join(words[(k * 7 + j) % len(words)] for j in range(k)) + "".join(others) * (k % 3)
            expected = oracle.encode(text)
            assert enc.encode(_fresh(text)) == expected, (kind, text)
            assert enc.count(_fresh(text)) == len(expected), (kind, text)
            assert enc._core.count(_fresh(text)) == len(oracle.encode_ordinary(text))
            assert enc._core.encode(_fresh(text)) == oracle.encode_ordinary(text)
            assert array("I", enc._core.encode_buffer(_fresh(text))).tolist() == oracle.encode_ordinary(text)


def test_a_lone_surrogate_keeps_its_ways(enc, oracle):
    text = "caf\u00e9 \u2019 a\ud800b"
    assert enc._core.count_unless(_fresh(text), enc._default_prefixes) is None  # the general path repairs it
    assert enc.encode(_fresh(text)) == oracle.encode(text)
    assert enc.count(_fresh(text)) == len(oracle.encode(text))
    with pytest.raises(UnicodeEncodeError):  # the core's own call: CPython's error, as before
        enc._core.count(_fresh(text))


def test_the_str_is_not_left_holding_its_utf8(enc):
    # CPython's str keeps the UTF-8 it was asked for (sys.getsizeof counts it); the core's is freed after the call
    text = _fresh("na\u00efve caf\u00e9 \u2019 " * 500)
    size = sys.getsizeof(text)
    enc.count(text)
    enc.encode(text)
    enc._core.count(text)
    assert sys.getsizeof(text) == size


def test_a_str_whose_utf8_was_made_before_is_read_as_it_is(enc, oracle):
    import ctypes

    as_utf8 = ctypes.pythonapi.PyUnicode_AsUTF8
    as_utf8.argtypes, as_utf8.restype = [ctypes.py_object], ctypes.c_char_p
    text = _fresh("’café’ " * 40)
    size = sys.getsizeof(text)
    assert as_utf8(text) == text.encode("utf-8")  # CPython's, kept in the str (another library asked first)
    assert sys.getsizeof(text) > size
    assert _native._str_utf8(text) == text.encode("utf-8")
    assert enc.count(text) == len(oracle.encode(text)) and enc.encode(text) == oracle.encode(text)


def test_a_big_text_read_without_the_gil_is_its_own_utf8(enc, oracle):
    # past TK_UNLOCKED_TEXT_BYTES the core's workers read the UTF-8 with the GIL released: the call's buffer
    text = "".join(f" caf\u00e9 {k} \u2019\U0001f600 na\u00efve" for k in range(20_000))
    expected = oracle.encode(text)
    assert len(text.encode("utf-8")) > 512 * 1024
    assert enc.count(_fresh(text)) == len(expected)
    assert enc.encode(_fresh(text)) == expected
