"""Pre-splitting patterns: the regexes that cut text into pieces before byte-level BPE, with their sources.

tiktoken's are identical strings to `tiktoken_ext/openai_public.py`, so ids match byte for byte:

>>> import regex
>>> regex.findall(GPT4_PATTERN, "Hello world's 12345!!")
['Hello', ' world', "'s", ' ', '123', '45', '!!']

Each family's pattern is recorded with where it comes from and how its reference runs it (`SPLIT_PATTERNS`):
- dialect "python-regex" + findall: tiktoken (and mistral-common, which runs Tekken's pattern with tiktoken);
- dialect "oniguruma" + isolated: Hugging Face `tokenizers` (a tokenizer.json Split, or a Sequence of them);
- `LLAMA_CPP_PRE_TOKENIZERS`: llama.cpp's regex lists per GGUF `tokenizer.ggml.pre` name (each regex splits
  the pieces of the one before), as written in llama.cpp's src/llama-vocab.cpp. Several are llama.cpp's
  rewrites of the tokenizer.json originals (e.g. `'[sS]` for `(?i:'s)`, lookaheads for o200k's classes);
  the originals are the HF entries here.
The tests check each string against its source where the source ships in a package (tiktoken,
mistral-common's tekken_240718.json, llama-cpp-python's sdist), and the native splitter against the
reference library on every code point (tests/engine/test_split_patterns.py).

Not handled here: compiling (tokend.engine.splitting does, into the native core; the `regex` module stays
the reference and the fallback for patterns outside the native subset).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "O200K_PATTERN",
    "PATTERNS",
    "GPT2_BYTE_LEVEL_PATTERN",
    "CL100K_HF_PATTERN",
    "LLAMA3_PATTERN",
    "QWEN2_PATTERN",
    "DEEPSEEK_V3_PATTERNS",
    "TEKKEN_PATTERN",
    "LLAMA_CPP_PRE_TOKENIZERS",
    "SplitPatternSpec",
    "SPLIT_PATTERNS",
    "BUILTIN_SCANNERS",
]

# ---- tiktoken (tiktoken_ext/openai_public.py, tiktoken 0.14) --------------------------------------------

# GPT-2 / r50k_base / p50k_base / p50k_edit. tiktoken's faster equivalent of the original GPT-2 release pattern.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""

# GPT-4 = cl100k_base.
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)

# o200k_base (GPT-4o) and o200k_harmony (GPT-OSS).
O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

PATTERNS: dict[str, str] = {"gpt2": GPT2_PATTERN, "gpt4": GPT4_PATTERN, "o200k": O200K_PATTERN}

# ---- Hugging Face tokenizer.json ------------------------------------------------------------------------

# ByteLevel(use_regex=true) (GPT-2, RoBERTa, ...): tokenizers/src/pre_tokenizers/byte_level.rs, which is
# the pattern of GPT-2's encoder.py.
GPT2_BYTE_LEVEL_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# cl100k's pattern as tokenizer.json files carry it (with `+` after `?` and `++`, which Oniguruma reads as
# repeats of repeats, not possessive): quicktok-v1 0.4.0's importer (quicktok/_import_core.py,
# CL100K_PAT_POSSESSIVE) lists it among the patterns found in the wild.
CL100K_HF_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

# Llama 3 (Meta-Llama-3 tokenizer.json, one Split + ByteLevel(use_regex=false)): recorded as "original
# regex from tokenizer.json" in llama.cpp's llama-vocab.cpp (LLAMA_VOCAB_PRE_TYPE_LLAMA3) and as
# LLAMA3_PAT in quicktok-v1 0.4.0.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen 2 / 2.5 / 3 (tokenizer.json, one Split): Llama 3's with single digits. Same two sources
# (LLAMA_VOCAB_PRE_TYPE_QWEN2's "original regex", quicktok's QWEN_PAT).
QWEN2_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# DeepSeek-V3 / R1 (tokenizer.json: a Sequence of three Splits, then ByteLevel(use_regex=false)); llama.cpp
# records the same three strings (LLAMA_VOCAB_PRE_TYPE_DEEPSEEK3_LLM). "\r\n" are the characters
# themselves, as JSON decodes them.
DEEPSEEK_V3_PATTERNS = (
    "\\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|"
    "\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
)

# ---- Mistral --------------------------------------------------------------------------------------------

# Tekken (Mistral NeMo, Pixtral, ...): config.pattern of tekken_240718.json in mistral-common 1.13.1, which
# mistral-common runs with tiktoken (python-regex, findall); HF's tokenizer.json of the same models carries
# it as a Split (oniguruma, isolated). o200k's case-aware letters without contractions, single digits.
TEKKEN_PATTERN = (
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"""
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"""
    r"""\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# ---- llama.cpp (GGUF tokenizer.ggml.pre -> regexes), llama-cpp-python 0.3.36's vendor/llama.cpp ----------

LLAMA_CPP_PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "llama-bpe": (
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    "qwen2": (
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    "deepseek-llm": (
        "[\r\n]",
        "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df\U0001e900-\U0001e943]+",
        "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+",
        "\\s+$",
        "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
        "\\p{N}+",
    ),
    "deepseek-coder": (
        "[\r\n]",
        "\\s?\\p{L}+",
        "\\s?\\p{P}+",
        "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+",
        "\\p{N}",
    ),
    "deepseek-v3": (
        "\\p{N}{1,3}",
        "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    ),
    "falcon": (
        "[\\p{P}\\$\\+<=>\\^~\\|`]+",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
        "[0-9][0-9][0-9]",
    ),
    "starcoder": (
        "\\p{N}",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    ),
    "refact": (
        "\\p{N}",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    ),
    "gpt-2": (
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    ),
    "command-r": (
        "\\p{N}",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    ),
    "mpt": (
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    ),
    "tekken": (
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    "gpt-4o": (
        "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
    "qwen35": (
        "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    ),
}
# `pre` names llama.cpp maps to the same list as one of the names above (its tokenizer_pre chain).
LLAMA_CPP_PRE_TOKENIZERS.update(
    {alias: LLAMA_CPP_PRE_TOKENIZERS[name] for alias, name in {
        "llama3": "llama-bpe", "llama-v3": "llama-bpe", "deepseek-r1-qwen": "qwen2", "stablelm2": "qwen2",
        "phi-2": "gpt-2", "olmo": "gpt-2", "smollm": "starcoder",
    }.items()}
)


@dataclass(frozen=True)
class SplitPatternSpec:
    """A family's split patterns as its reference runs them: stages in order, dialect, piece mode."""

    patterns: tuple[str, ...]
    dialect: str  # "python-regex" or "oniguruma"
    mode: str  # "findall" (tiktoken) or "isolated" (HF Split)
    source: str


SPLIT_PATTERNS: dict[str, SplitPatternSpec] = {
    "gpt2": SplitPatternSpec((GPT2_PATTERN,), "python-regex", "findall", "tiktoken gpt2/r50k/p50k/p50k_edit"),
    "cl100k_base": SplitPatternSpec((GPT4_PATTERN,), "python-regex", "findall", "tiktoken cl100k_base"),
    "o200k_base": SplitPatternSpec((O200K_PATTERN,), "python-regex", "findall", "tiktoken o200k_base, o200k_harmony"),
    "tekken": SplitPatternSpec((TEKKEN_PATTERN,), "python-regex", "findall", "mistral-common tekken_240718.json"),
    "hf-byte-level": SplitPatternSpec((GPT2_BYTE_LEVEL_PATTERN,), "oniguruma", "isolated", "tokenizers ByteLevel"),
    "hf-cl100k": SplitPatternSpec((CL100K_HF_PATTERN,), "oniguruma", "isolated", "tokenizer.json (quicktok)"),
    "hf-o200k": SplitPatternSpec((O200K_PATTERN,), "oniguruma", "isolated", "tokenizer.json (GPT-4o-like)"),
    "llama3": SplitPatternSpec((LLAMA3_PATTERN,), "oniguruma", "isolated", "Meta-Llama-3 tokenizer.json"),
    "qwen2": SplitPatternSpec((QWEN2_PATTERN,), "oniguruma", "isolated", "Qwen2/2.5/3 tokenizer.json"),
    "deepseek-v3": SplitPatternSpec(DEEPSEEK_V3_PATTERNS, "oniguruma", "isolated", "DeepSeek-V3 tokenizer.json"),
    "hf-tekken": SplitPatternSpec((TEKKEN_PATTERN,), "oniguruma", "isolated", "Mistral NeMo tokenizer.json"),
}

# Patterns the hand-written scanners (service/native/pretokenize.c) implement, per dialect: the splitter
# uses the scanner instead of the general matcher (tests/engine/test_split_patterns.py holds both to the
# references on every code point). A pattern reads the same in both dialects when it has no `$`/`^`, no
# quantifier followed by `+`, no `\w`, and no empty match; GPT2_PATTERN's `\s++$` is the exception, as
# Oniguruma's `$` is an end of line.
_BOTH_DIALECTS = {
    O200K_PATTERN: "o200k",
    GPT2_BYTE_LEVEL_PATTERN: "gpt2",  # = tiktoken's rewrite of it (tiktoken's comment; tests agree)
    LLAMA3_PATTERN: "llama3",
    CL100K_HF_PATTERN: "llama3",  # same pieces: the tests hold it to both references
    QWEN2_PATTERN: "qwen2",
    LLAMA_CPP_PRE_TOKENIZERS["llama-bpe"][0]: "llama3-ascii",
    LLAMA_CPP_PRE_TOKENIZERS["qwen2"][0]: "qwen2-ascii",
    TEKKEN_PATTERN: "tekken",
    DEEPSEEK_V3_PATTERNS[0]: "numbers3",  # DeepSeek-V3's digit stage (\p{N}{1,3})
    DEEPSEEK_V3_PATTERNS[1]: "deepseek-cjk",  # its CJK stage
    DEEPSEEK_V3_PATTERNS[2]: "deepseek-v3",  # its main stage
}
BUILTIN_SCANNERS: dict[tuple[str, str], str] = {
    (GPT2_PATTERN, "python-regex"): "gpt2",
    (GPT4_PATTERN, "python-regex"): "cl100k",
    **{(pattern, dialect): name for pattern, name in _BOTH_DIALECTS.items() for dialect in ("python-regex", "oniguruma")},
}
