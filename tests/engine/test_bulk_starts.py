"""The bulk piece starts (service/native/bulk_starts.c) of cl100k_base, o200k_base and the patterns that
share their rules in ASCII text (Llama 3, Qwen 2, their llama.cpp variants, Tekken, DeepSeek-V3's chain of
three Isolated Splits), and GPT-2's (r50k_base, p50k_base) against each pattern's reference (`regex`; Hugging Face `tokenizers` for the
oniguruma dialect and the chain): the split of text made to hit every rule of the 64-byte windows and
every way a window ends.

    >>> core = BpeCore({bytes([b]): b for b in range(256)}, "o200k")
    >>> text = "It's 12345 o'clock.\\n    x = helloWorld  (we'll SEE)!!\\n\\n" * 3
    >>> core.split(text) == regex.findall(O200K_PATTERN, text)
    True

The windows take ASCII letters, digits, spaces, \\n and printable punctuation; the texts here are long (a
window needs 65 bytes) and mostly of those, with the contraction letters, runs of digits longer than a
window's digit rule, spaces before \\n, and now and then a byte the windows leave to the scanner (\\r,
non-ASCII letters and spaces, controls; \\t under GPT-2's rules and the chain), so every window edge and every
fall-back is crossed. A window also
takes other scripts, in characters (2-4 bytes each, cut anywhere by the window's end): under cl100k's rules
(cl100k, Llama 3, Qwen 2) their letters, marks and punctuation, under o200k's (o200k, Tekken) their
punctuation and letters, those of both cases (Lm, Lo) and marks as lower-case ones; other digits and
whitespace, ſ, and under o200k a letter of both cases before an upper-case one, a mark after P, and the
first letter of both cases of a window with no ASCII but letters end it: the texts of the `_SCRIPTS` tests
are mostly of those, and random Unicode of every category is held to the references too. The whole
split is also held to tiktoken's ids through the conformance tests; this file is where a wrong rule shows
up first, with the text that broke it.
"""

from __future__ import annotations

import random

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

from tests.engine._split_oracles import hf_isolated
from tests.engine.test_split_patterns import SCANNED
from tokend.engine._native import BpeCore
from tokend.engine.patterns import DEEPSEEK_V3_PATTERNS, GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN
from tokend.engine.splitting import SplitterChain, compile_splitter

_BYTES_ONLY = {bytes([b]): b for b in range(256)}
_SPLITS = {name: (BpeCore(_BYTES_ONLY, name), regex.compile(pattern))
           for name, pattern in (("cl100k", GPT4_PATTERN), ("o200k", O200K_PATTERN), ("gpt2", GPT2_PATTERN))}  # fmt: skip

# What the rules turn on: contraction letters in both cases, other letters (o200k cuts where a lower-case
# letter meets an upper-case one), digits, the apostrophe, / (o200k's P tail) and other punctuation, spaces
# and \n; then bytes that end a window.
_WINDOW = ["s", "d", "m", "t", "l", "v", "r", "e", "S", "L", "V", "R", "E", "x", "Q", "0", "7", "'", ".", "!", "(",
           "/", " ", "  ", "\n", "aB", "ABc"]  # fmt: skip
# (ſ is s and K is k under (?i): a suffix or contraction may end in a byte the windows do not take.)
_OTHER = ["\t", "\r", "\r\n", "é", "\u00a0", "\u3000", "\x0b", "\x1f", "中", "😀", "\u0301", "ſ", "\u212a"]
_WORDS = ["the", "It's", "we'll", "THEY'RE", "don't", "I'm", "o'clock", "'Twas", "'ll", "'ve", "x'", "''s",
          "12345678901", "2024", "123", " ", "  ", "   ", "\n", "\n\n", "\n    ", " \n", "  \n  ", ".\n", "!!\n\n ",
          " (", ") ", "...", " .x", ".x", "a.b", "helloWorld's", "HTTPServer", "it'lL", "x'sOK", ".\n/", "//\n\n",
          "McDonald's"]  # fmt: skip


# Other scripts as cl100k's windows take them: letters of 2, 3 and 4 bytes (Cyrillic, Greek, Devanagari,
# CJK, Hangul, Latin-1 and a supplementary-plane letter), marks (Devanagari's, combining accents: P under
# cl100k), punctuation and symbols (« » — 、 。 € 😀), a format character (ZWJ); and what ends them: other
# digits (٣ ² ½ Ⅻ), other whitespace (no-break space, ideographic space, U+2028), ſ and K (under (?i)).
_SCRIPTS = ["слово", " слово", "Ωμέγα", " नमस्ते", "हिन्दी", "中文字", "日本語の", "한국어", "ñandú", "𐐷𐐸", "é",
            "\u0301", "\u093f", "«", "»", " «x»", "—", "、", "。", "€", "😀", "\u200d", "x'ſ", "'ſ", "\u212a",
            "٣", "²", "½", "Ⅻ", "\u00a0", "\u3000", "\u2028", "'слово", "'ñ", "é's", "l'été", "Ж'S", "中's",
            # o200k's cases: upper then lower, lower then upper, titlecase, suffixes after other letters, and
            # letters of both cases beside one-case ones
            "СЛОВО", "слОВо", "ΑΒγδ", "aБв", "ǅungla", "Straße's", "ÉCOLE'S", "ÀB'll", "中A中", "中A ", "A中", "ñÑ中",
            # o200k's letters of both cases (Lo, Lm, marks) beside upper- and lower-case ones, P runs, digits
            "a中A", "中dA", "中a中A", "Aकि", "कि", "किB", "क\u093eA", "!!\u093e", "!\u093eक", " \u093eक", "-\u093eA",
            "\u093e\u093e", "1\u093e", "ภาษาไทย", "\u0e31x", "ʰA", "aʰB", "中'S", "中'sA", "ٱلْعَرَبِيَّة"]  # fmt: skip


def _assert_wide_rules_like_regex(text: str) -> None:
    for name in ("cl100k", "o200k"):
        core, pattern = _SPLITS[name]
        assert core.split(text) == pattern.findall(text), f"{name}: {text!r}"


# DeepSeek-V3: the digits, then a CJK class, are cut off before the main stage (no contractions; whitespace
# before a digit ends the main stage's text): its three scanners run as one pass, with bulk starts of its own.
_DEEPSEEK = SplitterChain([compile_splitter(p, dialect="oniguruma") for p in DEEPSEEK_V3_PATTERNS])


def _assert_like_regex(text: str) -> None:
    for name, (core, pattern) in _SPLITS.items():
        assert core.split(text) == pattern.findall(text), f"{name}: {text!r}"
    assert _DEEPSEEK.split(text) == hf_isolated(DEEPSEEK_V3_PATTERNS, text), f"deepseek-v3: {text!r}"


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_WINDOW + _WORDS), min_size=20, max_size=200), st.lists(st.sampled_from(_OTHER), max_size=3),
       st.randoms(use_true_random=False))  # fmt: skip
def test_window_text_splits_like_regex(parts, others, rng):
    for other in others:
        parts.insert(rng.randrange(len(parts) + 1), other)
    _assert_like_regex("".join(parts))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab'sltSLA0 \n.!/\t"), min_size=60, max_size=400))
def test_dense_edge_text_splits_like_regex(text):
    _assert_like_regex(text)


def test_every_offset_of_each_rule_across_a_window_edge():
    """Each tricky snippet at every offset of the first two windows (so it straddles byte 63/64 and the
    byte after a window), followed by enough text for the window to be taken."""
    snippets = ["it's", "we'll", "x've", "'re", " 's", "''s", "1234567", "1234567890123", "  x", "   \n  y", "a \nb",
                ".\n\n x", "!!  (", "x.y", " .y", "\n'", "\n\n\n", "a" * 70, " " * 70, "\n" * 70, "9" * 70, "é", "\t x",
                "a  1", "x\n  7", ".   12", "  \n 3x", "1  2", "'sx", "x'tcha", " 's", "x 'll", "''s", "\n'd", "1're",
                "x'S", "'llama", " \n x", "\n\n\nx", "  \n", "( x", "x(y", "12 34", " 1x",
                "aBcD", "x'LL", "IT'S", ".\n/x", "a/\n", "x'", "x'ſ", "x'lſ", "'ſx",
                # tabs (the cl100k-like windows take them): a letter's X, never a P run's space
                "\tx", "\t\tx", "\t{", "\t\t{", " \tx", "\t x", "\t {", "{\tx", "x\t\n", "\t\n\ty", "\n\t\t1",
                "\t's", "\t'sx", "a\t\tB", "\t" * 70, "\t/\n", " \t \n"]  # fmt: skip
    filler = "Plain words, and more of them. " * 6
    for snippet in snippets:
        for offset in range(0, 140):
            _assert_like_regex("w" * offset + snippet + filler)
            _assert_like_regex(filler[:offset] + snippet + filler)


def test_tab_indented_code_splits_like_regex():
    """Code indented with tabs: the cl100k-like windows go on through tabs (a tab is whitespace that joins
    letters, as X of X?L+, but never a P run: "\t{" is two pieces where " {" is one)."""
    rng = random.Random(7)
    lines = ["if (x) {", "return y;", "}", "// it's", "\tcase 1:", "x = f(a,\tb);", "", "  \t mixed", "\t", "end\t"]
    for _ in range(200):
        text = "\n".join("\t" * rng.randrange(0, 4) + rng.choice(lines) for _ in range(rng.randrange(5, 60)))
        _assert_like_regex(text)


def test_random_documents_of_the_window_alphabet():
    rng = random.Random(13)
    alphabet = "etaoinshrdlu ETAOINS'0123456789.,;:!?()[]{}\"-/\n  "
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(65, 3000)))
        _assert_like_regex(text)


def test_text_ending_in_whitespace_keeps_the_end_of_text_rule():
    r"""\s++$ takes a run of whitespace that reaches the end whole: a window never decides such a run."""
    for tail in [" " * 80, "\n" * 80, "\n" + " " * 90, "  x" + " " * 100, "x\n\n" + " " * 66]:
        _assert_like_regex("Words before the end. " * 4 + tail)


# Every recorded pattern (either dialect) whose scanner has bulk starts.
BULK_SCANNERS = {"gpt2", "cl100k", "o200k", "llama3", "llama3-ascii", "qwen2", "qwen2-ascii", "tekken"}
BULK_CASES = [case for case in SCANNED if case.ours(use_builtin=True)[1] in BULK_SCANNERS]


def test_every_bulk_scanner_has_cases():
    assert {case.ours(use_builtin=True)[1] for case in BULK_CASES} == BULK_SCANNERS


@pytest.mark.parametrize("case", BULK_CASES, ids=lambda case: case.name)
def test_every_pattern_with_bulk_starts_splits_like_its_reference(case):
    split = case.ours(use_builtin=True)[0]
    rng = random.Random(case.name)
    pieces = _WINDOW + _WORDS + ["1234", "99"]
    for _ in range(150):
        parts = [rng.choice(pieces) for _ in range(rng.randrange(20, 120))]
        for _ in range(rng.randrange(3)):
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(_OTHER))
        text = "".join(parts)
        assert split(text) == case.reference(text), f"{case.name}: {text!r}"


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(_SCRIPTS + _WINDOW + _WORDS), min_size=20, max_size=200))
def test_other_scripts_split_like_regex(parts):
    _assert_like_regex("".join(parts))


def test_other_scripts_at_every_offset_across_a_window_edge():
    """Each snippet of other scripts at every offset of the first two windows, so that its characters are cut by
    the window's end at each of their bytes, in text of other scripts and in ASCII."""
    fillers = ["Слова и ещё слова, «цитата» — конец. " * 4, "中文的句子，还有一些。" * 8, "Plain words, and more. " * 6]
    for snippet in _SCRIPTS + [" x", "'s", "'ll", "a  b", "  \n", "1234", "x\n\n y"]:
        for filler in fillers:
            for offset in range(0, 130):
                _assert_wide_rules_like_regex(filler[:offset] + snippet + filler)
                _assert_wide_rules_like_regex("ж" * (offset // 2) + "w" * (offset % 2) + snippet + filler)


def test_documents_of_other_scripts():
    rng = random.Random(17)
    alphabets = ["абвгдеёжзийклмнопрстуфхцчшщъыьэюя АБВ.,«»—\n'", "αβγδεζηθικλμνξοπρστυφχψω ΑΒΓ;·\n",
                 "अआइईउकखगघचछजझटठडढणतथदधनपफबभमयरलवशसह ािीुूेैोौ्ं। \n", "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年，。、\n ",
                 "abcdefghij ÀÉÎÕÜàéîõüñç'!?0123 \n"]  # fmt: skip
    for _ in range(400):
        mix = "".join(rng.sample(alphabets, rng.randrange(1, 4)))
        _assert_like_regex("".join(rng.choice(mix) for _ in range(rng.randrange(65, 2500))))


@pytest.mark.parametrize("case", [case for case in BULK_CASES if case.ours(use_builtin=True)[1] != "gpt2"],
                         ids=lambda case: case.name)
def test_every_pattern_with_wide_windows_splits_other_scripts_like_its_reference(case):
    split = case.ours(use_builtin=True)[0]
    rng = random.Random(case.name)
    pieces = _SCRIPTS * 3 + _WINDOW + _WORDS
    for _ in range(200):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(20, 150)))
        assert split(text) == case.reference(text), f"{case.name}: {text!r}"


# Random Unicode for the wide windows: characters of every general category (each script's letters of one
# case and of both, marks, other digits, whitespace kinds, punctuation, symbols, format characters;
# surrogate-free), mixed with ASCII words, spaces, digits and apostrophes, in texts long enough for windows.
# o200k's rules take a letter of both cases (Lm, Lo) and a mark as a lower-case letter, except right before an
# upper-case letter, and a mark right after P: the pools put those side by side often.
def _code_points_by_category() -> dict[str, list[str]]:
    import unicodedata

    pools: dict[str, list[str]] = {}
    for code_point in range(0x80, 0x30000):
        if 0xD800 <= code_point < 0xE000:
            continue
        category = unicodedata.category(chr(code_point))
        if category not in ("Cn", "Co", "Cs"):
            pools.setdefault(category, []).append(chr(code_point))
    return pools


_POOLS = _code_points_by_category()
_ASCII_BITS = ["a", "Z", "word", "Word", "WORD", " ", "  ", "\n", "1", "123", "'s", "'LL", "'", "!", ".", "-", "/",
               " x", "\t"]  # fmt: skip


def _random_unicode_text(rng: random.Random) -> str:
    categories = rng.sample(sorted(_POOLS), rng.randrange(1, 6))
    # a few characters of each chosen category, drawn again and again: runs of one script, as text has
    chosen = [rng.choice(_POOLS[category]) for category in categories for _ in range(3)]
    if rng.random() < 0.7:
        chosen += rng.sample(_ASCII_BITS, rng.randrange(1, 6))
    return "".join(rng.choice(chosen) for _ in range(rng.randrange(40, 400)))


@settings(max_examples=400, deadline=None)
@given(st.randoms(use_true_random=False))
def test_random_unicode_of_every_category_splits_like_regex(rng):
    for _ in range(5):
        _assert_wide_rules_like_regex(_random_unicode_text(rng))


@pytest.mark.parametrize("case", [case for case in BULK_CASES if case.ours(use_builtin=True)[1] != "gpt2"],
                         ids=lambda case: case.name)
def test_every_pattern_with_wide_windows_splits_random_unicode_like_its_reference(case):
    split = case.ours(use_builtin=True)[0]
    rng = random.Random("unicode " + case.name)
    for _ in range(300):
        text = _random_unicode_text(rng)
        assert split(text) == case.reference(text), f"{case.name}: {text!r}"


def test_o200k_letters_of_both_cases_beside_upper_case_letters_and_punctuation():
    """Each pair of a letter of both cases or a mark beside an upper- or lower-case letter, P, a space or a
    digit, at every offset of a window of such letters and in one with ASCII spaces (a window without them
    ends at its first letter of both cases)."""
    both = ["中", "ก", "ʰ", "ª", "\u0301", "\u093e", "\u0e31", "\u20dd"]
    others = ["A", "a", "ǅ", "Ж", "ж", "!", "«", " ", "  ", "1", "'s", "'S", "\n"]
    fillers = ["ภาษาไทยภาษาไทย" * 6, "слово Слово中文 " * 6, "中文的句子还有一些" * 8]
    for x in both:
        for y in others:
            for snippet in (x + y, y + x, x + y + x, y + x + y, x + x + y + "a"):
                for filler in fillers:
                    for offset in range(0, 70, 3):
                        _assert_wide_rules_like_regex(filler[:offset] + snippet + filler)
