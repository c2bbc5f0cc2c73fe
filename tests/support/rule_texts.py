"""Seeded texts aimed at the rules tokenizers differ on, for the differential tests beside random_texts.py:

- contractions in every letter case and context ("'S", "'rE", "’ll", after letters, digits, spaces, punctuation),
  the split patterns' `(?i:'s|'t|...)` alternatives;
- whitespace runs of every kind (tab, CR, LF, NBSP, U+3000, VT, FF, U+2028, NEL, U+1680, ZWSP) before words,
  digits, punctuation and the text's end: the `\\s+(?!\\S)` / `\\s*[\\r\\n]+` rules;
- digit runs of 1-30 digits with other scripts' digits among them (`\\p{N}{1,3}` vs `\\p{N}`);
- normalization-sensitive text: combining marks in both canonical orders, compatibility characters (ligatures,
  Angstrom/Ohm signs, Hangul jamo, half-width kana with voiced marks, circled and squared forms, long s with
  dot below), for NFC / NFKC / nmt_nfkc normalizers;
- NUL and control characters, noncharacters, tag characters, soft hyphen, BOM;
- lone surrogates and surrogate pairs written as two code units (``surrogates=False`` leaves them out: for
  references that cannot take them);
- special-token text (``<s>``, ``<|endoftext|>``, ``[INST]``, ``▁``).

    rng = random.Random(21)
    texts = [rule_text(rng) for _ in range(200)] + [long_piece(rng)]   # long_piece: > 64 KiB, mostly one piece

The same seed gives the same texts on every machine (only `random.Random` and fixed tables).
"""

from __future__ import annotations

import random

from support.random_texts import LONG_KINDS, long_text, short_text

__all__ = ["long_piece", "rule_text"]

_SUFFIXES = ["s", "t", "re", "ve", "m", "ll", "d", "S", "T"]
_APOSTROPHES = ["'", "'", "'", "\u2019", "`"]
_SPACES = [" ", " ", " ", "\t", "\n", "\r", "\r\n", "\u00a0", "\u3000", "\x0b", "\x0c", "\u2028", "\u0085", "\u2009",
           "\u1680", "\u200b"]
_LETTERS = ["a", "Z", "é", "ß", "Ж", "中", "ア", "한", "ع", "ก", "ϴ", "ǅ", "İ", "ı", "ﬀ", "𝔄"]
_ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
_OTHER_DIGITS = ["٣", "१", "０", "𝟙", "½", "²", "Ⅻ", "①", "᠑"]
_PUNCTUATION = list(".,!?;:-_()[]{}<>/\\#$%&*+=@^`|~\"'") + ["...", "—", "«", "¿", "・", "。", "，"]
_NORMALIZATION = ["e\u0301", "\u00e9", "\ufb01", "\u212b", "\u2126", "\u1100\u1161\u11a8", "\uff76\uff9e", "\u0344",
                  "\u0958", "a\u0328\u0301", "a\u0301\u0328", "\u03a3", "\u1e9b\u0323", "\u2460", "\u337b", "\u00bd",
                  "\u2075", "\u00aa", "\u0130", "\ufe8e", "\u3300", "\u1f80", "\u0f73", "\u2163", "ǆ", "\u00b5",
                  "\u017f", "\u2002", "\u00a8", "\u0301", "\u0301\u0301", "\u20dd", "\u0338", "\u093f", "\u0e31",
                  "\u302a", "\u05b0"]
_CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x1f", "\x7f", "\x80", "\x9f", "\u200d", "\u200e", "\ufeff", "\ufffd",
             "\ufffe", "\uffff", "\U0010ffff", "\ue000", "\U000e0041", "\u00ad", "\u061c"]
_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00", "\ud83d", "\ude00", "\udc00\ud800"]
_SPECIAL_TEXTS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "[INST]", "<|im_start|>", "<0x41>", "\u2581", "\u2581\u2581"]


def _mixed_case(rng: random.Random, text: str) -> str:
    return "".join(char.upper() if rng.random() < 0.5 else char.lower() for char in text)


def _word(rng: random.Random) -> str:
    length = rng.choice([1, 1, 2, 3, 5, 8, 13])
    alphabet = _ASCII_LETTERS if rng.random() < 0.6 else _LETTERS
    return "".join(rng.choice(alphabet) for _ in range(length))


def _fragment(rng: random.Random, surrogates: bool) -> str:
    draw = rng.random()
    if draw < 0.18:  # a contraction
        before = rng.choice(["", _word(rng), " ", rng.choice(_SPACES), "1", rng.choice(_PUNCTUATION)])
        after = rng.choice(["", "", _word(rng), " ", "'", "s"])
        return before + rng.choice(_APOSTROPHES) + _mixed_case(rng, rng.choice(_SUFFIXES)) + after
    if draw < 0.36:  # a whitespace run, then what follows it
        run = "".join(rng.choice(_SPACES) if rng.random() < 0.3 else rng.choice(" \n\t")
                      for _ in range(rng.choice([1, 2, 3, 4, 7, 16, 40])))
        return run + rng.choice(["", _word(rng), "1", rng.choice(_PUNCTUATION), "'s"])
    if draw < 0.48:  # digits
        digits = "".join(rng.choice("0123456789") if rng.random() < 0.9 else rng.choice(_OTHER_DIGITS)
                         for _ in range(rng.choice([1, 2, 3, 4, 5, 6, 7, 9, 12, 30])))
        return rng.choice(["", " ", "x", "$", "-"]) + digits
    if draw < 0.60:
        return "".join(rng.choice(_NORMALIZATION) for _ in range(rng.randrange(1, 4))) + rng.choice(["", _word(rng)])
    if draw < 0.67:
        return "".join(rng.choice(_CONTROLS) for _ in range(rng.randrange(1, 3)))
    if draw < 0.72 and surrogates:
        return rng.choice(_SURROGATES)
    if draw < 0.77:
        return rng.choice(_SPECIAL_TEXTS)
    if draw < 0.85:
        return "".join(rng.choice(_PUNCTUATION) for _ in range(rng.randrange(1, 4)))
    if draw < 0.93:
        return short_text(rng, 4, special=False)
    return _word(rng)


def rule_text(rng: random.Random, *, surrogates: bool = True) -> str:
    """1-15 fragments (or, one time in 50, the empty text)."""
    if rng.random() < 0.02:
        return ""
    return "".join(_fragment(rng, surrogates) for _ in range(rng.randrange(1, 16)))


def long_piece(rng: random.Random) -> str:
    """66,000-140,000 characters, mostly one pre-split piece or one shape (random_texts.LONG_KINDS): the paths a
    text over 64 KiB takes (the GIL released)."""
    length = rng.randrange(66_000, 140_000)
    shape = rng.randrange(8)
    if shape == 0:
        text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
    elif shape == 1:
        text = " " * length + rng.choice(["", "a", "\n"])
    elif shape == 2:
        text = "".join(rng.choice("0123456789") for _ in range(length))
    elif shape == 3:
        text = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(length // 3))
    elif shape == 4:
        text = "".join(rng.choice(_PUNCTUATION[:30]) for _ in range(length))
    elif shape == 5:
        text = "".join(rule_text(rng, surrogates=False) for _ in range(length // 60))
    elif shape == 6:
        text = rng.choice(["\n", "\t", "\r\n", " \n"]) * (length // 2)
    else:
        text = long_text(rng, length, rng.choice(LONG_KINDS))
    return rng.choice(["", "x ", "'s"]) + text + rng.choice(["", " y", "'LL"])
