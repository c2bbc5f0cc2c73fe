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

from tokend.errors import ModelFormatError, RegistryError

__all__ = ["GgufTokenizer", "PRE_TOKENIZERS", "read_gguf_tokenizer"]

# llama.cpp's regex lists (src/llama-vocab.cpp, llm_tokenizer_bpe), by the `pre` names that select them.
# Non-ASCII characters are escaped: the character classes must keep their exact code points (an editor
# that normalizes text would turn U+1F7D into U+03CE, a different class).
_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_LLAMA3 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",)
_QWEN2 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",)
_QWEN35 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",)
_GPT2_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_GPT2 = (_GPT2_WORDS,)
_STARCODER = (r"\p{N}", _GPT2_WORDS)
_FALCON = (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2_WORDS, r"[0-9][0-9][0-9]")
_DEEPSEEK_LLM = (
    '[\r\n]',
    '\\s?[A-Za-z\xb5\xc0-\xd6\xd8-\xf6\xf8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+',
    '\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+',
    '\\s+$',
    '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+',
    '\\p{N}+',
)
_DEEPSEEK_CODER = (
    '[\r\n]',
    '\\s?\\p{L}+',
    '\\s?\\p{P}+',
    '[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+',
    '\\p{N}',
)
_DEEPSEEK_V3 = (
    '\\p{N}{1,3}',
    '[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+',
    '[!"#$%&\'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+',
)

# pre name -> (regexes, ignore_merges). The names with vectors in llama.cpp's test suite (llama-bpe, qwen2,
# qwen35, gpt-2, mpt, deepseek-llm, deepseek-coder, falcon, starcoder, refact, command-r) are held to
# them by tests/registry/test_gguf_import.py; the others share those entries in llama.cpp.
PRE_TOKENIZERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "llama-bpe": (_LLAMA3, True), "llama3": (_LLAMA3, True), "llama-v3": (_LLAMA3, True),
    "qwen2": (_QWEN2, False), "deepseek-r1-qwen": (_QWEN2, False), "stablelm2": (_QWEN2, False),
    "qwen35": (_QWEN35, False),
    "gpt-2": (_GPT2, False), "phi-2": (_GPT2, False), "mpt": (_GPT2, False), "olmo": (_GPT2, False),
    "starcoder": (_STARCODER, False), "refact": (_STARCODER, False), "command-r": (_STARCODER, False),
    "smollm": (_STARCODER, False),
    "falcon": (_FALCON, False),
    "deepseek-llm": (_DEEPSEEK_LLM, False),
    "deepseek-coder": (_DEEPSEEK_CODER, False),
    "deepseek-v3": (_DEEPSEEK_V3, False),
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
