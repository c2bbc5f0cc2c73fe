"""The scanners' bulk paths at their edges: runs of one ASCII class (letters, upper, lower, digits, spaces,
punctuation) of lengths around the 8- and 16-byte steps of native/ascii_runs.h, ending in every kind of
character (ASCII of another class, a letter, mark, digit or space that is not ASCII, the end of the text),
apostrophes and contractions after words, digit runs of 1-4, whitespace runs before words, \\r\\n, and the
digit stage's skip over text between numbers (DeepSeek-V3's chain). Every hand-written scanner against
its reference (`regex.findall`; `tokenizers` for the DeepSeek-V3 chain), and the general matcher beside it.
The run functions themselves on any bytes, each way of stepping (16 bytes with SSE2, 8 with 64-bit words,
1) against the `regex` module's classes: the scanners take the first that is compiled, so the others are
checked here.

    >>> _text([("lower", 16), ("high", 0)], "") == "a" * 16 + "\\u00e9"
    True
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.test_split_patterns import SCANNED, Case, _assert_same
from tokend.engine import _native

# ASCII runs and what may end them. Lengths: the bulk steps are 16 bytes (SSE2) or 8 (64-bit words),
# and a run shorter than a step ends inside its first one.
_RUN_LENGTHS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40]
_ALPHABETS = {
    "lower": string.ascii_lowercase,
    "upper": string.ascii_uppercase,
    "letters": string.ascii_letters,
    "digits": string.digits,
    "spaces": " ",
    "blank": " \t",
    "punct": string.punctuation,
    "controls": "\x00\x01\x1c\x1d\x1e\x1f\x7f",  # not \s for `regex` (str.isspace says \x1c-\x1f are)
    "newlines": "\r\n",
}
# Single characters where the scanners leave their bulk path: letters, marks, digits and spaces that are
# not ASCII, CJK (DeepSeek-V3's second stage), lead bytes the digit stage must decode, and emoji.
_HIGH = ["\u00e9", "\u00c9", "\u0301", "\u0434", "\u0414", "\u4e2d", "\u3042", "\u30a2", "\u3001", "\u00a0", "\u0085",
         "\u3000", "\u2028", "\u0663", "\u00b2", "\uff11", "\u2167", "\u0966", "\u2019", "\u201c", "\u00ab", "\u01c5",
         "\u02b0", "\u017f", "\u212a", "\U0001f600", "\U00010400", "\u00aa", "\u1e9e", "\u0e01", "\uac00",
         "\U0001d7ce", "\U00010107", "\u3007", "\u3021", "\u30fc", "\u4e00", "\u00bd", "\u06f1", "\u07c0"]
_PIECES = ["'s", "'S", "'t", "'re", "'VE", "'ll", "'Ll", "'m", "'d", "'x", "'", "\u2019s", "\r\n", "\n\n", " \n",
           "\r\n\r\n", " 's", "//", "/\n", "1234", "12345", " 1", " 12", " 123", " 1234"]


def _text(segments: list[tuple[str, int]], picks: str) -> str:
    """segments: (alphabet name | "high" | "piece", length or index); picks chooses within each alphabet."""
    out, k = [], 0
    for kind, count in segments:
        if kind == "high":
            out.append(_HIGH[count % len(_HIGH)])
        elif kind == "piece":
            out.append(_PIECES[count % len(_PIECES)])
        else:
            alphabet = _ALPHABETS[kind]
            for _ in range(count):
                out.append(alphabet[(ord(picks[k % len(picks)]) if picks else 0) % len(alphabet)])
                k += 1
    return "".join(out)


_segment = st.one_of(
    st.tuples(st.sampled_from(sorted(_ALPHABETS)), st.sampled_from(_RUN_LENGTHS)),
    st.tuples(st.just("high"), st.integers(0, len(_HIGH) - 1)),
    st.tuples(st.just("piece"), st.integers(0, len(_PIECES) - 1)),
)
_bulk_text = st.builds(_text, st.lists(_segment, min_size=1, max_size=12), st.text(string.printable, max_size=20))

# Every scanner once, in the dialect whose reference is cheaper where it has both (python-regex), and the
# DeepSeek-V3 chain against tokenizers (its stages only run as a chain).
_CASES: dict[str, Case] = {}
for _case in SCANNED:
    _builtin = _case.ours(use_builtin=True)[1]
    if _case.name == "deepseek-v3" or (_case.dialect == "python-regex" and _builtin not in _CASES):
        _CASES[_case.name if _case.name == "deepseek-v3" else _builtin] = _case


def test_every_scanner_is_checked_here():
    assert {"gpt2", "cl100k", "o200k", "llama3", "qwen2", "llama3-ascii", "qwen2-ascii", "tekken", "deepseek-v3",
            "numbers3", "deepseek-cjk"} <= set(_CASES)


@settings(max_examples=120, deadline=None)
@given(text=_bulk_text)
def test_runs_at_the_bulk_steps_every_scanner(text):
    for case in _CASES.values():
        _assert_same(case, [text])


# A few of each ASCII class (every digit: the digit runs), the bytes where the classes meet, and more.
_SOME_ASCII = list("09185aAzZmM _'/!@[`{~-.\t\n\r\x0b\x0c\x00\x1c\x1f\x7f")


def _assert_run_before_each_ending(run: str, length: int, endings: list[str]) -> None:
    # One text per start (none, a space, a word, a tab) holding the run before each ending in turn, each
    # followed by more text (so the bulk step past the end of the run reads real bytes), and the run once
    # more at the very end of the text.
    body = (_ALPHABETS[run] * (length // len(_ALPHABETS[run]) + 1))[:length]
    texts = []
    for start in ("", " ", "x", "\t"):
        texts.append("".join(f"{start}{body}{ending} tail of 16+ bytes\n" for ending in endings) + start + body)
    for case in _CASES.values():
        _assert_same(case, texts)


@pytest.mark.parametrize("length", _RUN_LENGTHS)
@pytest.mark.parametrize("run", sorted(_ALPHABETS))
def test_each_run_length_before_each_kind_of_end(run, length):
    _assert_run_before_each_ending(run, length, _SOME_ASCII + _HIGH + _PIECES + [" x", "  x", "'s"])


@pytest.mark.slow
@pytest.mark.parametrize("length", _RUN_LENGTHS)
@pytest.mark.parametrize("run", sorted(_ALPHABETS))
def test_each_run_length_before_every_ascii_byte(run, length):
    _assert_run_before_each_ending(run, length, [chr(byte) for byte in range(128)])


# ---- the run functions of native/ascii_runs.h, every way of stepping ---------------------------------------

_RUNS = {0: r"[A-Za-z]", 1: r"[a-z]", 2: r"[A-Z]", 3: r"[0-9]", 4: r" ", 5: r"[^\s\p{L}\p{N}]"}  # by run number
_STEPS = (0, 1, 2)  # 16 bytes (SSE2), 8 (64-bit words), 1


def _members(run: int) -> frozenset[int]:
    import regex

    pattern = regex.compile(_RUNS[run])
    return frozenset(byte for byte in range(128) if pattern.fullmatch(chr(byte)))


_MEMBERS = {run: _members(run) for run in _RUNS}  # ASCII bytes in each run, by the regex module


def _expected_run_end(data: bytes, pos: int, run: int) -> int:
    while pos < len(data) and data[pos] in _MEMBERS[run]:
        pos += 1
    return pos


def test_sse2_is_what_every_x86_64_build_uses():
    import platform

    if platform.machine() in ("x86_64", "AMD64"):
        assert _native.ASCII_RUNS_SSE2 == 1


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.one_of(st.sampled_from(b"aAzZ09 \t\n\r\x0b\x0c\x1f!/:@[`{~\x7f\x80\xc3\xe4\xff"),
                               st.integers(0, 255)), max_size=70).map(bytes),
       start=st.integers(0, 70))
def test_every_step_gives_the_run_end_of_the_regex_classes(data, start):
    start = min(start, len(data))
    for run in _RUNS:
        expected = _expected_run_end(data, start, run)
        for step in _STEPS:
            assert _native.ascii_run_end(data, start, run, step) == expected, (data, start, run, step)


@pytest.mark.parametrize("run", sorted(_RUNS))
def test_every_step_on_runs_of_every_length_before_every_byte(run):
    member = {0: b"q", 1: b"q", 2: b"Q", 3: b"7", 4: b" ", 5: b"%"}[run]
    for length in range(0, 41):
        for stop in range(256):
            data = b"x" + member * length + bytes([stop]) + b"tail after it"
            expected = _expected_run_end(data, 1, run)
            for step in _STEPS:
                assert _native.ascii_run_end(data, 1, run, step) == expected, (length, stop, step)
