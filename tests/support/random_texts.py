"""Seeded random texts for the differential tests (tokend against each family's reference library).

- ``short_text(rng)``: a few parts of every kind that trips a tokenizer: words with contractions and
  compatibility characters, many scripts, emoji and ZWJ sequences, whitespace runs and exotic spaces,
  punctuation, digits of several systems, code, special-token texts (``special=False`` leaves them out),
  control characters and random code points (no lone surrogates);
- ``long_text(rng, length, kind)``: 2k-200k characters of one shape (``LONG_KINDS``): long runs of one
  character class, mixed scripts, whitespace, digits, emoji ZWJ sequences, combining marks, code.

    rng = random.Random(7)
    texts = [short_text(rng) for _ in range(100)] + [long_text(rng, 5_000, kind) for kind in LONG_KINDS]

The same seed gives the same texts on every machine (only `random.Random` and fixed tables).
"""

from __future__ import annotations

import random

__all__ = ["LONG_KINDS", "long_text", "short_text"]

_WORDS = ["the", "The", "HELLO", "don't", "I'm", "we've", "they'll", "he'd", "it's", "x", "foo_bar", "camelCase",
          "http://example.com/a?b=c", "naïve", "Ünïcödé", "ﬁne", "ＦＵＬＬ", "e\u0301", "a\u0308\u0301"]
_SCRIPTS = ["Привет мир", "你好，世界。", "こんにちは、世界！カタカナ", "안녕하세요 세계", "مرحبا بالعالم", "שלום עולם",
            "नमस्ते दुनिया", "สวัสดีชาวโลก", "Γειά σου Κόσμε", "ᐊᐃᓐᓇᐅᑦ", "ሰላም ልዑል", "ꦲꦏ꧀ꦱꦫ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ℌ𝔢𝔩𝔩𝔬"]
_EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🧑🏿‍🚀", "❤️", "✈︎", "🫠", "1️⃣", "👩🏻‍❤️‍💋‍👨🏼"]
_SPACES = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2009", "\u200b", "\u2028", "\x0b",
           "\x0c", "\u2581"]
_PUNCTUATION = [".", ",", "!", "?", "...", "—", "–", "'", "’", "\"", "«", "»", "(", ")", "[", "]", "{", "}", "<", ">",
                "/", "\\", "#", "$", "%", "&", "*", "+", "=", "@", "^", "_", "`", "|", "~", ";", ":", "¿", "¡", "·", "…"]
_DIGITS = ["0", "1", "12", "123", "1234", "12345", "3.14", "1,000", "٣٤٥", "१२३", "½", "²", "Ⅻ", "０１２"]
_CODE = ["def f(x):\n    return x+1\n", "if (a && b) { c(); }", "for i in range(10):", "#include <stdio.h>", "    ",
         "\t\t", "==", "!=", "->", "=>", "::", "/* c */", "// x", "0xFF", "1e-9", "__init__"]
_SPECIAL_TEXTS = ["<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "[INST]", "[/INST]",
                  "<|begin_of_text|>", "<|eot_id|>", "<pad>", "<0x41>", "<|user|>", "<|end|>", "[PAD32011]"]
_CONTROLS = ["\x00", "\x01", "\x7f", "\x1b[0m", "\u0085", "\ufeff", "\u200d", "\u200e", "\ufffd", "\U0010ffff", "\ue000"]
_KINDS = [_WORDS, _SCRIPTS, _EMOJI, _SPACES, _PUNCTUATION, _DIGITS, _CODE, _SPECIAL_TEXTS, _CONTROLS]
_WEIGHTS = [8, 3, 2, 6, 4, 3, 2, 1, 1]

LONG_KINDS = ("mixed", "letters", "spaces", "newlines", "digits", "emoji_zwj", "cjk", "punctuation", "one_character",
              "code", "alternating", "combining", "tabs_and_spaces")


def _random_character(rng: random.Random) -> str:
    draw = rng.random()
    if draw < 0.5:
        return chr(rng.randrange(0x20, 0x7F))
    if draw < 0.8:
        return chr(rng.randrange(0xA0, 0x3000))
    if draw < 0.95:
        code = rng.randrange(0x3000, 0x110000)
        return "x" if 0xD800 <= code < 0xE000 else chr(code)
    return chr(rng.randrange(0, 0x20))


def short_text(rng: random.Random, max_parts: int = 12, *, special: bool = True) -> str:
    parts = []
    for _ in range(rng.randrange(0, max_parts + 1)):
        if rng.random() < 0.15:
            parts.append("".join(_random_character(rng) for _ in range(rng.randrange(1, 6))))
        else:
            kind = rng.choices(_KINDS, _WEIGHTS)[0]
            if kind is _SPECIAL_TEXTS and not special:
                continue
            parts.append(rng.choice(kind))
        if rng.random() < 0.4:
            parts.append(" ")
    return "".join(parts)


def long_text(rng: random.Random, length: int, kind: str) -> str:
    """About `length` characters (at least 1) of the shape `kind` (one of LONG_KINDS)."""
    choice = rng.choice
    if kind == "mixed":
        parts, size = [], 0
        while size < length:
            parts.append(short_text(rng, 20, special=False))
            size += len(parts[-1])
        text = "".join(parts)
    elif kind == "letters":
        text = "".join(choice("abcdefghijklmnopqrstuvwxyzABCDE") for _ in range(length))
    elif kind == "spaces":
        text = choice(["", "a", "x."]) + " " * length + choice(["", "b", "\n", "1"])
    elif kind == "newlines":
        text = "".join(choice(["\n", "\r\n", " \n", "\n\n", "\t\n"]) for _ in range(length // 2))
    elif kind == "digits":
        text = "".join(choice("0123456789") for _ in range(length))
        text = "x" + text + " y" if rng.random() < 0.5 else text
    elif kind == "emoji_zwj":
        text = "".join(choice(_EMOJI + ["\u200d", " "]) for _ in range(length // 3))
    elif kind == "cjk":
        text = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) if rng.random() < 0.9 else choice("，。 ") for _ in range(length))
    elif kind == "punctuation":
        text = "".join(choice(_PUNCTUATION) for _ in range(length))
    elif kind == "one_character":
        text = choice(["a", "é", "中", "😀", "-", "=", "1", "\u0301", "ア", "ß", "x "]) * length
    elif kind == "code":
        text = "".join(choice(_CODE) for _ in range(length // 8))
    elif kind == "alternating":
        text = ("a1" if rng.random() < 0.5 else "a ") * (length // 2)
    elif kind == "combining":
        text = "".join("e" + "\u0301" * rng.randrange(0, 5) for _ in range(length // 3))
    elif kind == "tabs_and_spaces":
        text = "".join(choice([" ", "\t", "  ", "\u00a0"]) for _ in range(length))
    else:
        raise ValueError(f"unknown kind {kind!r}; kinds: {', '.join(LONG_KINDS)}")
    return text[: max(length, 1) * 2] or " "
