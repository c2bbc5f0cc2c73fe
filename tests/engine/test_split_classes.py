"""Every character class of the native splitter against the references, on every code point of Unicode.

The general matcher classifies characters by one property byte per code point (unicode_props.h, generated
from the `regex` module, and for Oniguruma's `\\w` from `tokenizers`); these tests hold each class the
pattern syntax can name, alone, to `regex` (python-regex dialect) and to `tokenizers` (oniguruma dialect):

    >>> compile_splitter(r"\\p{Lu}+").findall("abCDe") == regex_findall(r"\\p{Lu}+", "abCDe")
    True

One string holds every code point (surrogates as U+0000, which the pattern classes never confuse with
them: they are not in the text the splitter sees); runs of a class are compared, so a single code point
classified differently changes the pieces. Measured differences between the references are asserted here
too: Oniguruma's `\\w` is not regex's on 8 code points, and its (?i:i) does not match U+0130.
`tokenizers` needs ~2 s for one pass over Unicode, so the quick tier runs a few combined passes against
it and the slow tier one pass per class and per letter.
"""

from __future__ import annotations

import functools

import pytest

from tests.engine._split_oracles import hf_isolated, regex_findall
from tokend.engine.splitting import compile_splitter
from tokend.engine.splitting.unicode_properties import CATEGORY_GROUPS, GENERAL_CATEGORIES


@functools.lru_cache(maxsize=1)
def every_code_point() -> str:
    return "".join(chr(cp) if not 0xD800 <= cp < 0xE000 else "\0" for cp in range(0x110000))


_PYTHON_CLASSES = (
    [rf"\p{{{name}}}" for name in GENERAL_CATEGORIES if name != "Cs"]
    + [rf"\p{{{name}}}" for name in CATEGORY_GROUPS]
    + [r"\P{L}", r"\p{^N}", r"\pL", r"\PN", r"\s", r"\S", r"\d", r"\D", r"\w", r"\W", "."]
    + [r"[^\s\p{L}\p{N}]", r"[^\r\n\p{L}\p{N}]", r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]", r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]",
       r"[^\r\n\p{L}\p{P}\p{S}]", r"[\p{P}\$\+<=>\^~\|`]", r"[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]",
       r"[^\u0800-\u4e00\uac00-\ud7ff\W]", r"[\x00-\x1f\u00b5\U00010400-\U0001044f]"]
)
# Oniguruma: the classes its tokenizer.json patterns use, and every group.
_ONIGURUMA_CLASSES = (
    [rf"\p{{{name}}}" for name in ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Zs", "Cf", "Co", "Cn")]
    + [rf"\p{{{name}}}" for name in CATEGORY_GROUPS]
    + [r"\s", r"\S", r"\d", r"\w", r"\W", ".", r"\p{^L}", r"[^\s\p{L}\p{N}]", r"[^\r\n\p{L}\p{P}\p{S}]",
       r"[\x{4e00}-\x{9fa5}\x{3040}-\x{309f}]"]
)


@pytest.mark.parametrize("klass", _PYTHON_CLASSES)
def test_python_regex_class_on_every_code_point(klass):
    text = every_code_point()
    pattern = f"(?:{klass})+"
    assert compile_splitter(pattern).findall(text) == regex_findall(pattern, text)


def test_oniguruma_category_groups_on_every_code_point():
    # The groups partition Unicode: one pass finds every code point in another group than the reference's.
    text = every_code_point()
    pattern = "|".join(rf"\p{{{name}}}+" for name in CATEGORY_GROUPS) + r"|\s+"
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


def test_oniguruma_contraction_letters_on_every_code_point():
    text = every_code_point()
    pattern = "|".join(f"(?i:{letter})+" for letter in "sdmtlvrei")
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


@pytest.mark.slow
@pytest.mark.parametrize("klass", _ONIGURUMA_CLASSES)
def test_oniguruma_class_on_every_code_point(klass):
    text = every_code_point()
    pattern = f"(?:{klass})+"
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


@pytest.mark.parametrize("letter", "abcdefghijklmnopqrstuvwxyz")
def test_case_insensitive_letters_on_every_code_point(letter):
    # (?i) widens a letter to its case variants (k: also U+212A KELVIN SIGN; s: also U+017F LONG S; i: also
    # U+0130 in regex but not in Oniguruma, where U+0130 folds to two characters).
    text = every_code_point()
    pattern = f"(?i:{letter})+"
    assert compile_splitter(pattern).findall(text) == regex_findall(pattern, text)


@pytest.mark.slow
@pytest.mark.parametrize("letter", "abcdefghijklmnopqrstuvwxyz")
def test_oniguruma_case_insensitive_letters_on_every_code_point(letter):
    text = every_code_point()
    pattern = f"(?i:{letter})+"
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


def test_dotted_capital_i_is_where_the_dialects_differ():
    text = "Ii\u0130\u0131"
    assert regex_findall("(?i:i)", text) == ["I", "i", "\u0130"] == compile_splitter("(?i:i)").findall(text)
    assert hf_isolated(["(?i:i)+"], text) == ["Ii", "\u0130\u0131"]
    assert compile_splitter("(?i:i)+", dialect="oniguruma").split_isolated(text) == ["Ii", "\u0130\u0131"]


def test_case_insensitive_classes_on_every_code_point():
    text = every_code_point()
    for pattern in [r"(?i:[a-z])+", r"(?i:[^a-z])+", r"(?i:[k-s0-9])+", r"(?i:[\u00c0-\u00ff])+"]:
        assert compile_splitter(pattern).findall(text) == regex_findall(pattern, text), pattern
    pattern = r"(?i:[a-z])+|(?i:[^a-z])+"
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


def test_oniguruma_word_class_differs_from_regex_where_measured():
    # Why the oniguruma dialect has its own \w bit: Latin-1's superscripts and fractions are word
    # characters to Oniguruma, the zero-width (non-)joiners are not (regex follows UTS #18).
    text = "".join(chr(cp) for cp in (0xB2, 0xB3, 0xB9, 0xBC, 0xBD, 0xBE, 0x200C, 0x200D))
    assert hf_isolated([r"\w+"], text) == [text[:6], text[6:]]
    assert compile_splitter(r"\w+", dialect="oniguruma").split_isolated(text) == [text[:6], text[6:]]
    assert regex_findall(r"\w+", text) == [text[6:]]
    assert compile_splitter(r"\w+").findall(text) == [text[6:]]
