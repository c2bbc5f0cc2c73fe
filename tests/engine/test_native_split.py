"""The native pre-splitter against the `regex` module: `BpeCore.split(text) == regex.findall(pattern, text)`
for the GPT-2, cl100k_base and o200k_base patterns.

    >>> core = BpeCore({bytes([b]): b for b in range(256)}, "cl100k")
    >>> core.split("Hello world's 12345!!") == regex.findall(GPT4_PATTERN, "Hello world's 12345!!")
    True

Inputs: every code point in many contexts (joined into big strings, so one findall covers a whole Unicode
plane), hypothesis text biased toward the characters where the patterns are subtle, the conformance corpus,
and hand-picked edge cases. The split does not depend on the vocabulary, so the cores here use the 256 single
bytes as their whole vocabulary.
"""

from __future__ import annotations

import bisect
import itertools
import string

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import corpus_texts, edge_cases
from tokend.engine._native import BpeCore
from tokend.engine.patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN

PATTERNS = {"gpt2": GPT2_PATTERN, "cl100k": GPT4_PATTERN, "o200k": O200K_PATTERN}
_COMPILED = {name: regex.compile(pattern) for name, pattern in PATTERNS.items()}
_BYTES_ONLY = {bytes([b]): b for b in range(256)}
_CORES = {name: BpeCore(_BYTES_ONLY, name) for name in PATTERNS}


def _assert_split_like_regex(name: str, text: str) -> None:
    assert _CORES[name].split(text) == _COMPILED[name].findall(text), f"{name}: {text[:200]!r}"


# ---- a) every code point in many contexts ------------------------------------------------------------

# Three sweeps, sized so the file runs in well under 20 s (every context over every plane would take over a
# minute, regex.findall being the slow half):
# 1. every code point of every plane in "{0}{0}" (runs of one class) joined by the separators below;
# 2. every code point of planes 0-3 and 14 (all of Unicode 16's assigned characters; planes 4-13 are
#    unassigned, 15-16 private use) in _CLASS_TEMPLATE, which splits differently for each class the
#    scanner's table holds (letter, number, whitespace, o200k's upper/lower-ish, contraction letter): a
#    wrong table entry for any one code point changes the pieces;
# 3. every code point of planes 0 and 1 (ASCII, all the exotic whitespace, marks, Lt/Lm, and four-byte
#    UTF-8 with emoji and mathematical letters) in the contexts where the patterns' alternatives differ.
_ALL_PLANES = tuple(range(17))
_ASSIGNED_PLANES = (0, 1, 2, 3, 14)
_CONTEXT_PLANES = (0, 1)

# "x{0}": letter?  "1{0}": number?  "|{0}Aa": o200k's [UP]*[LO]+ vs [UP]+[LO]* after a prefix character,
# and whitespace vs other ("|" joins only non-whitespace)  "a'{0}": a contraction letter under (?i)?
# test_class_template_tells_classes_apart checks that regex itself cuts one character of each class
# differently.
_CLASS_TEMPLATE = "x{0}1{0}|{0}Aa'{0}"

# "{0}" is the code point. The contexts put it where each pattern's alternatives differ: after an optional
# space or prefix character, inside letter runs (o200k's upper/lower case runs), before and after
# contractions, digits, punctuation runs followed by newlines or "/", and whitespace runs before text.
_CONTEXTS = [
    "{0}",
    " {0}",
    "a{0}",
    "{0}a",
    "'{0}",
    "'{0}E",
    "'l{0}",
    "{0}'s",
    "A{0}b",
    "{0}\n",
    "1{0}",
    "{0} x",
    "\r\n{0}",
    "{0}{0}123'RE",
    " {0}/\n",
    "\t{0}\u0301  y",
]
# Snippets are joined with these in turn, so neighbouring snippets also meet through letters, digits,
# newlines, nothing at all, ...
_SEPARATORS = [" ", "\n", "|", "  ", "x", "\t", "0", ". ", "", "\r\n", "'", "A", " \u00a0", "\u3000\n"]


def _plane_text(template: str, plane: int) -> tuple[str, list[int], list[int]]:
    """The template filled with every code point of the plane (surrogates left out), snippets joined by
    the separators in turn; plus each snippet's start offset and code point, to name a failing snippet."""
    parts: list[str] = []
    starts: list[int] = []
    code_points: list[int] = []
    offset = 0
    separators = itertools.cycle(_SEPARATORS)
    for cp in range(plane << 16, (plane + 1) << 16):
        if 0xD800 <= cp < 0xE000:
            continue
        snippet = template.format(chr(cp))
        separator = next(separators)
        parts += (snippet, separator)
        starts.append(offset)
        code_points.append(cp)
        offset += len(snippet) + len(separator)
    return "".join(parts), starts, code_points


def _assert_plane_splits_like_regex(template: str, plane: int) -> None:
    text, starts, code_points = _plane_text(template, plane)
    for name, compiled in _COMPILED.items():
        ours = _CORES[name].split(text)
        theirs = compiled.findall(text)
        if ours == theirs:
            continue
        # Name the first snippet where the pieces differ (by where regex's differing piece starts).
        first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
        matches = list(compiled.finditer(text))
        offset = matches[first].start() if first < len(matches) else len(text)
        snippet = max(bisect.bisect_right(starts, offset) - 1, 0)
        cp = code_points[snippet]
        pytest.fail(
            f"{name}: template {template!r}, first difference at U+{cp:04X} (snippet "
            f"{text[starts[snippet]:starts[snippet] + 12]!r}): ours {ours[max(first - 2, 0):first + 3]!r}, "
            f"regex {theirs[max(first - 2, 0):first + 3]!r}"
        )


def test_every_code_point_in_runs():
    for plane in _ALL_PLANES:
        _assert_plane_splits_like_regex("{0}{0}", plane)


def test_every_assigned_code_point_by_class():
    for plane in _ASSIGNED_PLANES:
        _assert_plane_splits_like_regex(_CLASS_TEMPLATE, plane)


@pytest.mark.parametrize("template", _CONTEXTS)
def test_every_code_point_of_planes_0_and_1_in_context(template):
    for plane in _CONTEXT_PLANES:
        _assert_plane_splits_like_regex(template, plane)


def test_class_template_tells_classes_apart():
    # One character per class the patterns distinguish: Ll, Lu, Lm/Lo (both upper- and lower-ish), M, N,
    # Unicode whitespace, other, lower and upper contraction letters. If regex cut two of them at the same
    # places, sweep 2 could not see a code point misclassified as the other.
    chars = ["a", "A", "\u4e2d", "\u0301", "\u2167", "\u2000", "!", "s", "T"]
    cuts = {
        tuple(tuple(len(piece) for piece in compiled.findall(_CLASS_TEMPLATE.format(char))) for compiled in _COMPILED.values())
        for char in chars
    }
    assert len(cuts) == len(chars)


def test_plane_text_names_the_code_point_of_each_snippet():
    # The failure message relies on this bookkeeping; a wrong offset would blame the wrong code point.
    text, starts, code_points = _plane_text("<{0}>", 1)
    assert len(starts) == len(code_points) == 0x10000
    for i in (0, 1, 12345, 0xFFFF):
        assert text[starts[i] : starts[i] + 3] == f"<{chr(code_points[i])}>"
    assert code_points[:2] == [0x10000, 0x10001]
    text, starts, code_points = _plane_text("{0}", 0)
    assert len(code_points) == 0x10000 - 0x800 and 0xD800 not in code_points  # no surrogates


# ---- b) hypothesis text biased toward the subtle characters --------------------------------------------

_WHITESPACE = ["\t", "\n", "\r", "\x0b", "\x0c", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2028", "\u2029", "\u3000"]
_SUBTLE = (
    list(string.ascii_letters + string.digits + string.punctuation)
    + ["'", "\u2019", "s", "S", "\u017f", "t", "T", "l", "L", "v", "V", "r", "R", "e", "E", "m", "M", "d", "D"]
    + _WHITESPACE
    + ["\r\n", "'s", "'S", "'ll", "'Re", "\u2019s"]
    + ["\u0301", "\u0903", "\u02b0", "\u01c5", "\u4e2d", "\ud55c", "\u0e01", "\u0663", "\uff11"]
    + ["\U0001f600", "\U0001f44d\U0001f3fd", "\u200d", "\ufe0f", "/", "//", "\u212a", "\u0130", "\u00b2", "\u2167"]
)
_subtle_text = st.lists(
    st.one_of(st.sampled_from(_SUBTLE), st.sampled_from(_SUBTLE), st.characters(exclude_categories=("Cs",))),
    max_size=50,
).map("".join)


@settings(max_examples=1500, deadline=None)
@given(text=_subtle_text)
def test_hypothesis_subtle_text(text):
    for name in PATTERNS:
        _assert_split_like_regex(name, text)


@settings(max_examples=400, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",))))
def test_hypothesis_general_text(text):
    for name in PATTERNS:
        _assert_split_like_regex(name, text)


# ---- c) the corpus ----------------------------------------------------------------------------------

def _valid_utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates: the Encoding handles them before the core
        return False
    return True


@pytest.mark.parametrize("name", PATTERNS)
def test_corpus(name):
    texts = [text for text in corpus_texts() if _valid_utf8(text)]
    assert len(texts) > len(edge_cases())  # the corpus found files beyond the hand-written cases
    for text in texts:
        _assert_split_like_regex(name, text)


# ---- d) edge cases ------------------------------------------------------------------------------------

_EDGE_TEXTS = (
    ["", "a", " ", "\n", "\r\n", "'", "'s", "1", "!", "\u3000", "\u0301", "\U0001f600"]
    + [f"word{end}" for end in (" ", "  ", "\n", "\r\n", " \n ", "\t", "\u3000", " \n", "\n\n", " \r\n \t")]
    + [f"!!{end}" for end in (" ", "\n", "\r\n", " \n ", "\n/")]
    + [
        " " * 10_000,
        "\n" * 10_000,
        " \n" * 5_000,
        " \t\u3000" * 3_000 + "x",
        "a" * 100_000,
        "A" * 50_000 + "a",
        "1" * 10_001,
        "!" * 10_000 + "\n" * 100,
        "/" * 1_000 + "\n/\n",
        "\u2019s" * 1_000,
        "'s" * 1_000,
        "\u0301" * 5_000,
        "\u4e2d" * 20_000,
        "\U0001f600" * 10_000,
        "x" + " " * 1_000 + "y",
    ]
)


@pytest.mark.parametrize("name", PATTERNS)
def test_edge_cases(name):
    for text in _EDGE_TEXTS:
        _assert_split_like_regex(name, text)


@pytest.mark.parametrize("name", PATTERNS)
def test_every_single_character_alone(name):
    # One character alone: the end of the text is right after it (\s++$, \s+(?!\S) at the end).
    for char in _SUBTLE + [chr(cp) for cp in range(0x250)]:
        _assert_split_like_regex(name, char)


def test_hand_checked_splits():
    # Checked by hand against the patterns, independently of both implementations.
    assert _CORES["cl100k"].split("Hello world's 12345!!") == ["Hello", " world", "'s", " ", "123", "45", "!!"]
    assert _CORES["gpt2"].split("I'LL  go\n") == ["I", "'", "LL", " ", " go", "\n"]
    assert _CORES["o200k"].split("HTTPServer's a/\n") == ["HTTPServer's", " a", "/\n"]
    assert _CORES["cl100k"].split("") == []


def test_surrogates_raise_unicode_encode_error():
    for name in PATTERNS:
        for method in (_CORES[name].split, _CORES[name].encode, _CORES[name].count):
            with pytest.raises(UnicodeEncodeError):
                method("ok \ud800 ok")


def test_core_without_pattern_refuses_text():
    core = BpeCore(_BYTES_ONLY, None)
    for method in (core.split, core.encode, core.count):
        with pytest.raises(ValueError, match="no built-in pattern"):
            method("hello")
    assert core.encode_pieces(["hello"]) == list(b"hello")  # pieces split elsewhere still work
