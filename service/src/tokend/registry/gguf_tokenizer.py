"""The tokenizer inside a GGUF file (llama.cpp's model format), converted into a Hugging Face tokenizer.json
that tokend stores as the payload (and that `tokenizers` itself reads the same way).

What is read (`gguf_metadata`, which takes its value types from the `gguf` package: `pip install
'tokend[gguf]'`):
- `tokenizer.ggml.model`: "gpt2" (byte-level BPE) is converted; "llama" (SentencePiece) and anything else
  is refused, naming it (CONVERTERS is the hook for other families);
- `tokenizer.ggml.tokens` / `token_type` / `merges`: every token goes into the vocabulary under its id;
  CONTROL (and UNKNOWN) tokens become special added tokens, USER_DEFINED ones added tokens that are not
  special (llama.cpp matches both in raw text), the merges keep their order;
- `tokenizer.ggml.pre`: the pre-tokenizer, by name, as llama.cpp's `llm_tokenizer_bpe` defines it (its
  list of regexes, each an Isolated split of the pieces before, then the byte mapping) and whether the
  whole-piece shortcut applies (`ignore_merges`, llama.cpp's Llama 3 family); an unknown name is refused,
  naming it;
- `tokenizer.ggml.bos_token_id` / `eos_token_id` and `tokenizer.chat_template`, for the manifest.

Like llama.cpp, the converted file has no normalizer (a model whose original tokenizer.json normalizes,
e.g. NFC, differs on text that is not already normalized; import that tokenizer.json instead).

    converted = read_gguf_tokenizer(Path("ggml-vocab-qwen2.gguf"))
    converted.pre, converted.bos_token, len(converted.tokenizer_json)    # ('qwen2', '<|endoftext|>', 5928681)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokend.engine.patterns import LLAMA_CPP_PRE_TOKENIZERS
from tokend.errors import ModelFormatError, RegistryError

__all__ = ["GgufTokenizer", "PRE_TOKENIZERS", "read_gguf_tokenizer"]

# pre name -> (regexes, ignore_merges): llama.cpp's regex lists (tokend.engine.patterns.LLAMA_CPP_PRE_TOKENIZERS,
# its src/llama-vocab.cpp verbatim: llama.cpp's rewrites of the tokenizer.json originals, and for GPT-2,
# Falcon and StarCoder regex approximations of Hugging Face pre-tokenizers that are not Splits) and whether
# the whole-piece shortcut applies (llama.cpp's Llama 3 family). Chosen per name by llama.cpp's reference
# vectors: with these lists every `.inp`/`.out` vector of the names that have them (llama-bpe, qwen2,
# qwen35, gpt-2, mpt, deepseek-llm, deepseek-coder, falcon, starcoder, refact, command-r) gives the same ids,
# split natively (tests/registry/test_gguf_import.py); the other names share those lists in llama.cpp.
_IGNORE_MERGES = {"llama-bpe", "llama3", "llama-v3"}
_SUPPORTED = (
    "llama-bpe", "llama3", "llama-v3", "qwen2", "deepseek-r1-qwen", "stablelm2", "qwen35", "gpt-2", "phi-2", "mpt",
    "olmo", "starcoder", "refact", "command-r", "smollm", "falcon", "deepseek-llm", "deepseek-coder", "deepseek-v3",
)
PRE_TOKENIZERS: dict[str, tuple[tuple[str, ...], bool]] = {
    name: (LLAMA_CPP_PRE_TOKENIZERS[name], name in _IGNORE_MERGES) for name in _SUPPORTED
}
# GGUF token types (gguf.TokenType)
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


@dataclass(frozen=True)
class GgufTokenizer:
    """A GGUF file's tokenizer as a tokenizer.json (bytes), and what the manifest records from it."""

    tokenizer_json: bytes
    pre: str
    bos_token: str | None
    eos_token: str | None
    chat_template: str | None


def read_gguf_tokenizer(path: Path) -> GgufTokenizer:
    """Convert the tokenizer of the GGUF file at `path` (ModelFormatError for what it cannot convert)."""
    try:
        from tokend.registry.gguf_metadata import read_gguf_metadata
    except ImportError:
        raise RegistryError("reading GGUF files needs the gguf package: pip install 'tokend[gguf]'") from None
    fields = read_gguf_metadata(path, prefix="tokenizer.")
    model = _value(fields, "tokenizer.ggml.model", path)
    converter = CONVERTERS.get(model)
    if converter is None:
        raise ModelFormatError(
            f"{path.name}: tokenizer.ggml.model {model!r} is not supported by this importer (supported: "
            f"{', '.join(sorted(CONVERTERS))}; 'llama' is SentencePiece, another family)"
        )
    return converter(fields, path)


def _value(fields: dict[str, Any], key: str, path: Path, default: Any = ...) -> Any:
    if key not in fields:
        if default is ...:
            raise ModelFormatError(f"{path.name} has no {key}")
        return default
    return fields[key]


def _byte_level_bpe(fields: dict[str, Any], path: Path) -> GgufTokenizer:
    pre = _value(fields, "tokenizer.ggml.pre", path, None)
    if pre not in PRE_TOKENIZERS:
        raise ModelFormatError(
            f"{path.name}: tokenizer.ggml.pre {pre!r} is not a pre-tokenizer tokend knows (known: "
            f"{', '.join(sorted(PRE_TOKENIZERS))}); import the model's tokenizer.json instead"
        )
    regexes, ignore_merges = PRE_TOKENIZERS[pre]
    tokens = _value(fields, "tokenizer.ggml.tokens", path)
    types = _value(fields, "tokenizer.ggml.token_type", path, [_NORMAL] * len(tokens))
    merges = _value(fields, "tokenizer.ggml.merges", path)
    if len(types) != len(tokens):
        raise ModelFormatError(f"{path.name}: {len(tokens)} tokens but {len(types)} token types")
    vocab: dict[str, int] = {}
    added = []
    for token_id, (text, kind) in enumerate(zip(tokens, types)):
        if kind == _BYTE:
            raise ModelFormatError(f"{path.name}: token {token_id} {text!r} is a BYTE token, which byte-level BPE has not")
        if text in vocab:
            raise ModelFormatError(f"{path.name}: tokens {vocab[text]} and {token_id} are both {text!r}")
        vocab[text] = token_id
        if kind in (_CONTROL, _UNKNOWN, _USER_DEFINED):
            added.append({"id": token_id, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": kind != _USER_DEFINED})
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False} for regex in regexes
            ] + [byte_level],
        },
        "post_processor": None,
        "decoder": byte_level,
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
            "vocab": vocab, "merges": list(merges),
        },
    }

    def token(key: str) -> str | None:
        token_id = _value(fields, key, path, None)
        return tokens[token_id] if isinstance(token_id, int) and 0 <= token_id < len(tokens) else None

    return GgufTokenizer(
        tokenizer_json=json.dumps(document, ensure_ascii=False, indent=None).encode("utf-8"),
        pre=pre,
        bos_token=token("tokenizer.ggml.bos_token_id"),
        eos_token=token("tokenizer.ggml.eos_token_id"),
        chat_template=_value(fields, "tokenizer.chat_template", path, None),
    )


# tokenizer.ggml.model -> converter (the hook for other families, e.g. "llama" = SentencePiece)
CONVERTERS = {"gpt2": _byte_level_bpe}
