"""Shared parts of the budget tests (offsets, truncate, chunk, streaming decode): the encoding families,
hostile text for hypothesis, and reference computations written independently of the engine's.

Families (every one available on this branch):
- cl100k_base, o200k_base: from the embedded default registry (`tokend.get_encoding`), native split;
  tiktoken is their oracle.
- trained: a minbpe-style model trained here with `tokend.train` on alice29.txt (GPT-4 split, 600 ids, one
  special token).
- fallback: cl100k_base's ranks under Qwen2's split pattern (single digits) with a lookbehind alternative
  that never matches in practice, which the native compiler refuses, so the `regex` module splits (the
  regex fallback path).
- hf-gpt2: GPT-2's own files as a Hugging Face tokenizer.json (`Encoding.from_model`): merges by the merge
  list's priority (the pair rule), Hugging Face's ByteLevel split (natively) and an added token.
Plus `overshooting()`: a toy model built so that cutting text re-encodes it into MORE tokens than the whole
text's encoding had there (a lookahead keeps "xxxx" whole only before a "y"): real models do this rarely
(o200k_base on a few suffixes), so this one exercises the search paths of truncation and chunking.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from hypothesis import strategies as st

import tokend
from tokend.engine import Encoding

FAMILY_NAMES = ("cl100k_base", "o200k_base", "trained", "fallback", "hf-gpt2")
OPENAI_NAMES = ("cl100k_base", "o200k_base")
ALICE = Path(__file__).resolve().parents[2] / "corpus" / "alice29.txt"
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@lru_cache(maxsize=None)
def family(name: str) -> Encoding:
    if name in OPENAI_NAMES:
        return tokend.get_encoding(name)
    if name == "trained":
        text = ALICE.read_text(encoding="utf-8")
        return tokend.train([text], 600, special_tokens={"<|endoftext|>": 600}, name="alice_600").encoding
    if name == "fallback":
        base = tokend.get_encoding("cl100k_base")
        encoding = Encoding(
            "cl100k_qwen2_split",
            pat_str=r"(?<=\x00\x01)\x02|" + QWEN2_PATTERN,
            mergeable_ranks=dict(base.mergeable_ranks),
            special_tokens=dict(base.special_tokens),
        )
        assert encoding._native_splitter is None, "the fallback family must split with the regex module"
        return encoding
    if name == "hf-gpt2":
        from support.tokenizer_json import gpt2_tokenizer_json
        from tokend.engine import parse_tokenizer_json

        return Encoding.from_model(parse_tokenizer_json(gpt2_tokenizer_json(), name="gpt2-hf").model)
    raise ValueError(name)


@lru_cache(maxsize=None)
def overshooting() -> Encoding:
    ranks = {bytes([i]): i for i in range(256)} | {b"xx": 256, b"xxxx": 257, b"xxxxxxxx": 258}
    return Encoding("overshooting", pat_str=r"x+(?=y)|[\s\S]", mergeable_ranks=ranks, special_tokens={"<|end|>": 259})


def overshooting_text() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(["x", "xxxx", "xxxxxxxx", "y", " ", "\n\n", ". ", "é"]), max_size=40).map("".join)


def oracle(name: str):
    """tiktoken's Encoding for an OpenAI family (tests/conftest.py makes it work offline)."""
    import tiktoken

    return tiktoken.get_encoding(name)


# Pieces hostile text is made of: words, whitespace runs of every kind, digits, punctuation, text without
# spaces, emoji ZWJ sequences and flags, combining marks, CJK, lone surrogates and surrogate pairs written as
# two code units, exotic spaces and line separators.
ATOMS = [
    "hello", " world", "Hello", " The", "don't", "DON'T", "’s", "x", "ab" * 20,
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r\n\r\n", " \n \n", "\u00a0", "\u3000", "\u2028", "\x85",
    "0", "42", "1234567", "3.14", ".", ",", "!", "?", "...", "—", "「", "」", "。", "<|", "|>",
    "é", "e\u0301", "a\u0308\u0323", "Z\u0351\u036b\u0343", "\u0915\u094d\u0937",
    "😀", "👍🏽", "👩\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "🇫🇷", "❤️",
    "中文", "日本語テキスト", "한국어", "العربية", "हिन्दी", "ไทย",
    "\ud800", "\udfff", "\udc00\ud800", "\ud83d\ude00",
    "thisisaverylongwordwithoutanywhitespaceatall",
]


def hostile_text(max_atoms: int = 40) -> st.SearchStrategy[str]:
    """Text made of ATOMS and arbitrary characters (hypothesis's own text, surrogates excluded there)."""
    piece = st.one_of(st.sampled_from(ATOMS), st.text(max_size=6))
    return st.lists(piece, max_size=max_atoms).map("".join)


def repaired_boundaries(text: str) -> dict[int, int]:
    """byte offset in the UTF-8 of the repaired text -> index in `text`, at every character boundary.

    Repair as tiktoken: a surrogate pair is the character it encodes (two indexes in `text`), a lone
    surrogate is U+FFFD (one index).
    """
    boundaries = {0: 0}
    index = offset = 0
    while index < len(text):
        char = text[index]
        width = 1
        if "\ud800" <= char <= "\udbff" and index + 1 < len(text) and "\udc00" <= text[index + 1] <= "\udfff":
            char = text[index : index + 2].encode("utf-16", "surrogatepass").decode("utf-16")
            width = 2
        elif "\ud800" <= char <= "\udfff":
            char = "\ufffd"
        offset += len(char.encode("utf-8"))
        index += width
        boundaries[offset] = index
    return boundaries


def reference_cuts(text: str, token_bytes: list[bytes]) -> list[int]:
    """Indexes in `text` where a token of this sequence ends on a character boundary, 0 and len(text) included."""
    boundaries = repaired_boundaries(text)
    cuts, offset = [0], 0
    for token in token_bytes:
        offset += len(token)
        if offset in boundaries and boundaries[offset] != cuts[-1]:
            cuts.append(boundaries[offset])
    return cuts
