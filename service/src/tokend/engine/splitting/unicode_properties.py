"""The per-code-point property byte the native splitter classifies characters by, and class names over it.

Every code point has one byte (service/native/unicode_props.h, generated from the pinned `regex` module
and, for Oniguruma's `\\w`, from `tokenizers`): its General_Category in the low 5 bits, then White_Space
(`\\s`), `\\w` as the `regex` module defines it, and `\\w` as Oniguruma (Hugging Face `tokenizers`) defines
it. A character class built from `\\p{..}`, `\\s`, `\\w`, `\\d` and their negations is therefore exactly a
set of byte values: a 256-bit mask (`Signatures`), bit b set when code points whose byte is b belong.

>>> signature_mask("L") & (1 << GENERAL_CATEGORIES.index("Lu")) != 0
True

Measured (tokenizers 0.23.3 vs regex 2025.9.18, every code point): the General_Category classes and
`\\s` agree; `\\w` differs on 8 code points (Oniguruma: + U+00B2 U+00B3 U+00B9 U+00BC U+00BD U+00BE,
- U+200C U+200D), hence its own bit.
"""

from __future__ import annotations

__all__ = [
    "GENERAL_CATEGORIES",
    "CATEGORY_GROUPS",
    "SPACE_BIT",
    "WORD_BIT",
    "ONIG_WORD_BIT",
    "ALL_SIGNATURES",
    "LAYOUT",
    "signature_mask",
    "space_mask",
    "word_mask",
]

# Order = the value in the low 5 bits of the property byte.
GENERAL_CATEGORIES = (
    "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
    "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn",
)  # fmt: skip
CATEGORY_GROUPS = {
    "L": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "M": ("Mn", "Mc", "Me"),
    "N": ("Nd", "Nl", "No"),
    "P": ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
    "S": ("Sm", "Sc", "Sk", "So"),
    "Z": ("Zs", "Zl", "Zp"),
    "C": ("Cc", "Cf", "Cs", "Co", "Cn"),
}
SPACE_BIT = 5  # White_Space: \s in both dialects
WORD_BIT = 6  # \w of the `regex` module
ONIG_WORD_BIT = 7  # \w of Oniguruma
ALL_SIGNATURES = (1 << 256) - 1
# Checked against the native module's copy at import, so a stale build cannot misclassify silently.
LAYOUT = ",".join(GENERAL_CATEGORIES) + f";space={SPACE_BIT};word={WORD_BIT};onig_word={ONIG_WORD_BIT}"


def _mask_where(predicate) -> int:
    mask = 0
    for byte in range(256):
        if predicate(byte):
            mask |= 1 << byte
    return mask


def signature_mask(name: str) -> int:
    """Byte values of the General_Category `name` (two letters) or group (`L`, `M`, `N`, `P`, `S`, `Z`, `C`)."""
    categories = CATEGORY_GROUPS.get(name, (name,))
    indexes = {GENERAL_CATEGORIES.index(category) for category in categories}
    return _mask_where(lambda byte: byte & 31 in indexes)


def space_mask() -> int:
    return _mask_where(lambda byte: byte >> SPACE_BIT & 1)


def word_mask(*, oniguruma: bool) -> int:
    bit = ONIG_WORD_BIT if oniguruma else WORD_BIT
    return _mask_where(lambda byte: byte >> bit & 1)

