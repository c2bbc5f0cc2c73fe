"""Seeded differential fuzzing of issue 18's three engine paths against each family's reference library.

- Bulk piece starts through tabs (service/native/bulk_starts.c): texts dense in tabs beside spaces, \\n, \\r,
  other whitespace, letters of several scripts and cases, digits, punctuation and contractions, after an
  ASCII prefix of every length 0-80 (every alignment to the 64-byte windows). Ids and counts against
  tiktoken (cl100k_base, o200k_base, gpt2), `tokenizers` (Llama 3, Qwen 3 (Qwen 2's pattern), a
  DeepSeek-V3-style chain) and mistral-common (Tekken); the pieces against `regex` / `tokenizers`' Split.
- The default special-token policy in one core call (`BpeCore.count_unless` / `encode_unless`, text_find.c):
  special tokens whole, cut short ("<|endo", "<|" at the very end), broken by another character, around
  16-byte steps, with lone surrogates, non-BMP text and str subclasses, for every encoding tiktoken has:
  its ids, or its refusal (ValueError).
- The bucket merge (pieces of 16 KiB and more, bpe_bucket_merge.c): random pieces of small alphabets
  (letters of one or both cases, repeated motifs, one script's characters, raw bytes) through encode, count
  and encode_piece, against tiktoken.

The same generators ran for ~10 minutes a path when the changes landed (hundreds of thousands of texts, no
difference); these seeded runs keep guarding the paths in about 10 s for the whole file.
"""

from __future__ import annotations

import functools
import json
import random
import string
import unicodedata

import pytest
import regex
import tiktoken
import tokenizers

from support import tokenizer_json as files
from tests.engine._split_oracles import hf_isolated
from tokend import get_encoding
from tokend.engine import Encoding, parse_tokenizer_json, read_tekken_json

# ---- the references -------------------------------------------------------------------------------------

_OPENAI = ("gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony")


@functools.lru_cache(maxsize=None)
def _tokenizer_json_pair(name: str) -> tuple[Encoding, tokenizers.Tokenizer]:
    document = {"llama3": files.llama3_tokenizer_json, "qwen3": files.qwen3_tokenizer_json,
                "deepseek-v3-style": files.deepseek_v3_style_tokenizer_json}[name]()  # fmt: skip
    parsed = parse_tokenizer_json(document, name=name)
    return Encoding.from_model(parsed.model), tokenizers.Tokenizer.from_str(json.dumps(document))


@functools.lru_cache(maxsize=None)
def _tekken_pair():
    from pathlib import Path

    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
    ours = Encoding.from_model(read_tekken_json(path.read_bytes(), name="mistral-nemo").model)
    return ours, Tekkenizer.from_file(path)


def _model(name: str):
    """(ours, reference ids of a text, reference pieces of a text or None, our pieces of a text)."""
    if name in _OPENAI:
        ours, theirs = get_encoding(name), tiktoken.get_encoding(name)
        pattern = regex.compile(theirs._pat_str)
        return ours, theirs.encode_ordinary, pattern.findall, ours._split
    if name == "tekken":
        ours, theirs = _tekken_pair()
        pattern = regex.compile(ours.pattern)
        return ours, lambda text: theirs.encode(text, bos=False, eos=False), pattern.findall, ours._split
    ours, theirs = _tokenizer_json_pair(name)
    patterns = list(files.DEEPSEEK_V3_PATTERNS) if name == "deepseek-v3-style" else [ours.pattern]
    normalized = (lambda text: unicodedata.normalize("NFC", text)) if name == "qwen3" else (lambda text: text)
    return (ours, lambda text: theirs.encode(text, add_special_tokens=False).ids,
            lambda text: hf_isolated(patterns, normalized(text)),
            lambda text: ours._split(normalized(text)))


# ---- 1. tabs in the bulk windows ------------------------------------------------------------------------

_WHITESPACE = ["\t", "\t", "\t\t", "\t\t\t", " ", "  ", "   ", "\n", "\n\n", "\r", "\r\n", "\x0b", "\x0c", "\u00a0",
               "\u3000", "\u2028", "\u2003", "\u0085", "\x1c", " \t", "\t ", "\t\n", "\n\t", " \t\n", "\t\r\n",
               "\t\u00a0", "\u00a0\t"]  # fmt: skip
_LETTERS = ["a", "s", "t", "d", "m", "ll", "re", "ve", "the", "Hello", "HelloWorld", "ABc", "XYZ", "aB", "x", "Q", "S",
            "LL", "слово", "СЛОВО", "Ωμέγα", "中文", "日本語の", "한국어", "ñandú", "É", "é", "ǅ", "نص", "हिन्दी",
            "\u0301", "ſ", "\u212a", "Straße", "𐐷", "ß"]  # fmt: skip
_DIGITS = ["1", "12", "123", "1234", "12345678901", "0", "٣", "²", "½"]
_PUNCTUATION = [".", ",", "{", "}", "(", ")", "!!", "'", "''", "/", "//", "\\", "#", "->", "=", ";", ":", "«", "»", "—",
                "、", "€", "😀", "👩\u200d💻", '"', "`", "*", "-", "_", "<", ">", "|", "?", ".\n", "{\n",
                "/\n"]  # fmt: skip
_CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL", "'D", "'M", "'Ve"]
_PARTS = _WHITESPACE * 5 + _LETTERS * 4 + _DIGITS + _PUNCTUATION * 2 + _CONTRACTIONS
_PREFIX_BYTES = string.ascii_letters[:36] + string.digits + " .,;:!?'\"()[]{}<>-_/=+*&^%$#@~`|\n"
_CODE_LINES = ["if x:", "return y", "foo(a, b)", "}", "{", "x = 1", "// c", "'s'", ""]


def tab_dense_text(rng: random.Random, prefix_length: int, parts: int = 120) -> str:
    """An ASCII prefix of `prefix_length` bytes, then tabs among every kind of part (mostly ASCII, so that
    the windows run on through the tabs), now and then tab-indented code."""
    body = []
    for _ in range(rng.randint(5, parts)):
        draw = rng.random()
        if draw < 0.35:
            body.append("\t" * rng.randint(1, 4))
        elif draw < 0.45:
            body.append(rng.choice(_WHITESPACE) + rng.choice(_LETTERS))
        elif draw < 0.5:
            body.append(rng.choice(_WHITESPACE) + rng.choice(_PUNCTUATION))
        else:
            body.append(rng.choice(_PARTS))
    text = "".join(body)
    if rng.random() < 0.5:
        text = "".join(char for char in text if char < "\x80" or rng.random() < 0.05)
    if rng.random() < 0.3:
        lines = ["\t" * rng.randint(0, 4) + rng.choice(_CODE_LINES) for _ in range(rng.randint(1, 12))]
        text = rng.choice(["\n", "\r\n", "\n\n"]).join(lines) + text
    prefix = "".join(rng.choice(_PREFIX_BYTES) for _ in range(prefix_length))
    return prefix + text + rng.choice(["", "", "\t", " ", "\n", "\t ", " \t"])


_TAB_MODELS = ["cl100k_base", "o200k_base", "llama3", "qwen3", "tekken", "deepseek-v3-style", "gpt2"]


@pytest.mark.parametrize("name", _TAB_MODELS)
def test_tab_dense_text_at_every_window_alignment_matches_the_reference(name):
    ours, reference_ids, reference_pieces, our_pieces = _model(name)
    rng = random.Random(f"tabs-{name}")
    for case in range(81 * 4):
        text = tab_dense_text(rng, prefix_length=case % 81)
        expected = reference_ids(text)
        assert ours.encode(text, disallowed_special=()) == expected, text
        assert ours.count(text, disallowed_special=()) == len(expected), text
        if name != "deepseek-v3-style":  # a chain's pieces are not one pattern's (its ids are held above)
            assert our_pieces(text) == reference_pieces(text), text


# ---- 2. the default special-token policy in one core call ----------------------------------------------

_HARMONY_NAMED = sorted(s for s in tiktoken.get_encoding("o200k_harmony").special_tokens_set if "reserved" not in s)
# every encoding's special tokens but o200k_harmony's 1,091 (its named ones and two reserved ones below)
_SPECIALS = sorted({s for name in _OPENAI[:-1] for s in tiktoken.get_encoding(name).special_tokens_set})
_SPECIALS += _HARMONY_NAMED + ["<|reserved_200100|>", "<|reserved_201087|>"]
_FILLERS = ["a", "b", "<", "|", ">", " ", "\n", "\t", "é", "日", "😀", "\U0001f9d1\u200d\U0001f4bb", "𐐷", "<<", "||",
            "|>", "<|", "|<", "12", "'s", "endoftext", "\u00a0", "\r\n", "x" * 15, "y" * 16, "z" * 17, "\x00", "\ufeff",
            "\uffff"]  # fmt: skip
_SURROGATES = ["\ud800", "\udfff", "\ud83d", "\ude00", "\ud83d\ude00", "\udc00\ud800"]


class _Text(str):
    """A str subclass (read by its characters, as tiktoken reads it; test_special_tokens.py has one whose
    methods lie)."""


def _special_part(rng: random.Random) -> str:
    draw, special = rng.random(), rng.choice(_SPECIALS)
    cut = rng.randint(1, len(special) - 1)
    if draw < 0.08:
        return special
    if draw < 0.30:
        return special[:cut]  # "<|endo"
    if draw < 0.34:
        return rng.choice(_SURROGATES)
    if draw < 0.40:  # one character replaced, or split by another character
        return special[:cut] + rng.choice(["é", "😀", "<", "|", "\x00", "\ud800", ""]) + special[cut + 1 :]
    return rng.choice(_FILLERS)


def special_policy_text(rng: random.Random) -> str:
    if rng.random() < 0.5:  # one part at any place of the scanner's 16-byte steps, near the end
        before = "".join(rng.choice(["a", "é", "日", "😀", "<", " ", "\t"]) for _ in range(rng.randint(0, 70)))
        after = "".join(rng.choice(["", "a", "é", "😀", "|", ">"]) for _ in range(rng.randint(0, 3)))
        text = before + _special_part(rng) + after
    else:
        text = "".join(_special_part(rng) for _ in range(rng.randint(0, 40)))
    if rng.random() < 0.15:
        special = rng.choice(_SPECIALS)
        text += special[: rng.randint(1, len(special) - 1)]  # cut short at the very end
    return text


def _outcome(call, text, **policy):
    try:
        return call(text, **policy)
    except ValueError:  # tiktoken's refusal; ours is DisallowedSpecialTokenError, a ValueError
        return ValueError


@pytest.mark.parametrize("name", _OPENAI)
def test_default_special_token_policy_matches_tiktoken(name):
    ours, theirs = get_encoding(name), tiktoken.get_encoding(name)
    rng = random.Random(f"specials-{name}")
    for _ in range(400):
        text = special_policy_text(rng)
        text = _Text(text) if rng.random() < 0.2 else text
        expected = _outcome(theirs.encode, text)
        assert _outcome(ours.encode, text) == expected, repr(text)
        assert _outcome(ours.count, text) == (expected if expected is ValueError else len(expected)), repr(text)
        for policy in ({"allowed_special": "all"}, {"allowed_special": {"<|endoftext|>"}}):
            expected = _outcome(theirs.encode, text, **policy)
            assert _outcome(ours.encode, text, **policy) == expected, (repr(text), policy)
            assert _outcome(ours.count, text, **policy) == (expected if expected is ValueError else len(expected))


# ---- 3. the bucket merge --------------------------------------------------------------------------------

_SCRIPTS = {"cyrillic": "абвгдежзийклмнопрстуфхцчшщъыьэюя", "greek": "αβγδεζηθικλμνξοπρστυφχψω",
            "cjk": "的一是不了人我在有他这中大来上国个到说们", "hangul": "가나다라마바사아자차카타파하한국어",
            "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "latin1": "àáâãäåæçèéêëìíîïñòóôõöøùúûüý",
            "emoji": "😀😁😂🤣😃😄😅😆😉😊🚀🔥💯🎉", "thai": "กขคงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ"}  # fmt: skip


def long_piece(rng: random.Random, size: int) -> str | bytes:
    """About `size` bytes of one shape: letters of 2-30 kinds (lower, upper, both, title-like), a motif
    repeated with a few changes, one script's characters (2-4 common ones: long stretches no cut splits, which
    reach the bucket merge), or raw bytes (encode_piece only)."""
    shape = rng.choice(["letters", "letters", "repeated", "script", "few of a script", "bytes"])
    if shape == "letters":
        kinds = rng.sample(string.ascii_lowercase, rng.randint(2, 26))
        case = rng.choice(["lower", "upper", "both", "title"])
        if case in ("upper", "both"):
            kinds = [c.upper() for c in kinds] + (kinds if case == "both" else [])
        text = "".join(rng.choices(kinds, weights=[rng.random() ** 3 + 0.01 for _ in kinds], k=size))
        if case == "title":
            every = rng.randint(3, 9)
            text = "".join(c.upper() if i % every == 0 else c for i, c in enumerate(text))
        return text
    if shape == "repeated":
        motif = "".join(rng.choices(string.ascii_lowercase[: rng.randint(2, 12)], k=rng.randint(1, 24)))
        chars = list((motif * (size // len(motif) + 1))[:size])
        for _ in range(rng.randint(0, 50)):
            chars[rng.randrange(size)] = rng.choice(string.ascii_lowercase)
        return "".join(chars)
    if shape in ("script", "few of a script"):
        alphabet = _SCRIPTS[rng.choice(sorted(_SCRIPTS))]
        alphabet = rng.sample(alphabet, rng.randint(2, len(alphabet))) if shape == "script" else \
            rng.sample(alphabet[:8], rng.randint(2, 4))  # fmt: skip
        return "".join(rng.choices(alphabet, k=size // len(alphabet[0].encode())))
    alphabet = bytes(rng.sample(range(256), rng.randint(2, 30))) if rng.random() < 0.5 else \
        _SCRIPTS[rng.choice(sorted(_SCRIPTS))].encode()[: rng.randint(2, 40)]  # fmt: skip
    return bytes(rng.choices(alphabet, k=size))


def _check_long_pieces(name: str, sizes: list[int], seed: str) -> None:
    ours, theirs = get_encoding(name), tiktoken.get_encoding(name)
    rng = random.Random(seed)
    for size in sizes:
        data = long_piece(rng, size)
        piece = data if isinstance(data, bytes) else data.encode()
        expected = theirs._encode_single_piece(piece)
        assert ours._core.encode_piece(piece) == expected, (size, piece[:40])
        if isinstance(data, str):
            assert ours._core.encode_pieces([data]) == expected, (size, data[:40])
            assert ours._core.count_pieces([data]) == len(expected), (size, data[:40])
            expected = theirs.encode_ordinary(data)  # split by the pattern first (o200k cuts between cases)
            assert ours.encode(data) == expected, (size, data[:40])
            assert ours.count(data) == len(expected), (size, data[:40])


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_pieces_of_16_to_40_kilobytes_match_tiktoken(name):
    rng = random.Random(f"buckets-{name}")
    sizes = [16_384 + delta for delta in (-1, 0, 1, 2, 3, 63, 64, 65)]
    sizes += [rng.randint(16_384, 40_000) for _ in range(12)]
    _check_long_pieces(name, sizes, f"bucket-pieces-{name}")


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_pieces_of_up_to_200_kilobytes_match_tiktoken(name):
    rng = random.Random(f"big-buckets-{name}")
    _check_long_pieces(name, [rng.randint(40_000, 200_000) for _ in range(16)], f"big-bucket-pieces-{name}")
