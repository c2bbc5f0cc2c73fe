"""The tokenizer inside a GGUF file (llama.cpp's model format), converted into a payload tokend stores: one
dispatcher on `tokenizer.ggml.model` (CONVERTERS), the metadata read by `gguf_metadata` (only the
`tokenizer.*` and `general.*` keys; a model file of gigabytes costs no RAM).

"gpt2" (byte-level BPE) becomes a Hugging Face tokenizer.json (payload `hf_tokenizer_json`, which
`tokenizers` itself reads the same way):
- `tokenizer.ggml.tokens` / `token_type` / `merges`: every token goes into the vocabulary under its id;
  CONTROL (and UNKNOWN) tokens become special added tokens, USER_DEFINED ones added tokens that are not
  special (llama.cpp matches both in raw text), the merges keep their order;
- `tokenizer.ggml.pre`: the pre-tokenizer, by name, as llama.cpp's `llm_tokenizer_bpe` defines it (its
  list of regexes, each an Isolated split of the pieces before, then the byte mapping) and whether the
  whole-piece shortcut applies (`ignore_merges`, llama.cpp's Llama 3 family); an unknown name is refused,
  naming it. Like llama.cpp, the converted file has no normalizer (a model whose original tokenizer.json
  normalizes, e.g. NFC, differs on text that is not already normalized; import that tokenizer.json instead).

"llama" (SentencePiece BPE: Llama 1/2, Mistral 7B, their fine-tunes) becomes a sentencepiece `.model` file
(payload `sentencepiece_model`, ModelProto) rebuilt from `tokenizer.ggml.tokens`, `.scores` and
`.token_type` (GGUF's token types are sentencepiece's piece types), with the normalizer llama.cpp applies
to such models: no character map, a dummy prefix unless `tokenizer.ggml.add_space_prefix` is false, spaces
as `▁`, extra whitespace kept unless `tokenizer.ggml.remove_extra_whitespaces` is true. Byte fallback is on
when the vocabulary has all 256 `<0xNN>` byte pieces; BOS/EOS/UNK/PAD are the pieces the ids name.
Exactly one piece is UNKNOWN (sentencepiece's rule): the one `unknown_token_id` names; other UNKNOWN tokens
(Phi-3's `[PAD320nn]`) become CONTROL, which llama.cpp tokenizes the same way.

Both: `tokenizer.ggml.bos_token_id` / `eos_token_id` and `tokenizer.chat_template` go into the manifest, and
the template, checked with the special-token texts it reads (`chat_format_from_gguf`), becomes the
version's chat format. A template that does not check does not stop the import: the tokenizer is still
good, the template is kept verbatim and `chat_format_problem` says why it is not the chat format.
Any other `tokenizer.ggml.model` is refused, naming it.

    converted = read_gguf_tokenizer(Path("ggml-vocab-qwen2.gguf"))
    converted.payload_format, converted.settings, converted.bos_token   # ('hf_tokenizer_json', {'pre': 'qwen2'}, '<|endoftext|>')
    converted.chat_format.source                                        # 'GGUF tokenizer.chat_template'
"""

from __future__ import annotations

import json
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tokend.engine.patterns import LLAMA_CPP_PRE_TOKENIZERS
from tokend.errors import ModelFormatError
from tokend.registry.chat.gguf_template import chat_format_from_gguf
from tokend.registry.chat.spec import ChatFormatSpec
from tokend.registry.gguf_metadata import SkippedArray, read_gguf_metadata
from tokend.registry.manifest import PayloadFormat

__all__ = ["GgufTokenizer", "PRE_TOKENIZERS", "CONVERTERS", "read_gguf_tokenizer"]

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
    """A GGUF file's tokenizer as a payload (uncompressed content), and what the manifest records from it."""

    payload_format: PayloadFormat
    payload: bytes
    bos_token: str | None
    eos_token: str | None
    chat_template: str | None
    settings: dict[str, Any] = field(default_factory=dict)  # what the conversion read, for the provenance
    chat_format: ChatFormatSpec | None = None  # the file's default chat template, checked
    chat_format_problem: str | None = None  # why the file's template is not the chat format (None: it is, or none)


# The arrays the converters read; any other array is not built.
ARRAY_KEYS = frozenset({"tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.scores",
                        "tokenizer.ggml.merges", "tokenizer.chat_templates"})


def read_gguf_tokenizer(path: Path) -> GgufTokenizer:
    """Convert the tokenizer of the GGUF file at `path` (ModelFormatError for what it cannot convert)."""
    # Only tokenizer.* keys, and of those only the arrays read below: a 30 M-item array under any other key
    # (general.*, or tokenizer.* that nothing reads) cost 0.5 GB
    fields = read_gguf_metadata(path, prefix="tokenizer.", arrays=ARRAY_KEYS)
    model = _value(fields, "tokenizer.ggml.model", path)
    converter = CONVERTERS.get(model) if isinstance(model, str) else None
    if converter is None:
        raise ModelFormatError(
            f"{path.name}: tokenizer.ggml.model {model!r} is not supported by this importer (supported: "
            f"{', '.join(repr(name) for name in sorted(CONVERTERS))})"
        )
    converted = converter(fields, path)
    try:
        spec = chat_format_from_gguf(fields)
    except ModelFormatError as problem:
        return replace(converted, chat_format_problem=f"{path.name}: {problem}")
    return replace(converted, chat_format=spec)


def _value(fields: dict[str, Any], key: str, path: Path, default: Any = ..., kind: str | None = None) -> Any:
    """`fields[key]` (`default` when absent; ModelFormatError without one), of the GGUF type `kind` names when
    given: "string", or "strings" / "numbers" / "integers" for arrays of those."""
    if key not in fields:
        if default is ...:
            raise ModelFormatError(f"{path.name} has no {key}")
        return default
    value = fields[key]
    if kind is not None and not _KINDS[kind](value):
        raise ModelFormatError(f"{path.name}: {key} is {_gguf_type(value)}, not {_KIND_NAMES[kind]}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_BYTE_ARRAYS = (bytes, array)  # how gguf_metadata keeps arrays of UINT8 and INT8: integers, a byte each
_KINDS = {
    "string": lambda value: isinstance(value, str),
    "strings": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "numbers": lambda value: isinstance(value, _BYTE_ARRAYS) or isinstance(value, list) and all(map(_number, value)),
    "integers": lambda value: isinstance(value, _BYTE_ARRAYS) or isinstance(value, list) and all(type(item) is int for item in value),
}
_KIND_NAMES = {"string": "a string", "strings": "an array of strings", "numbers": "an array of numbers",
               "integers": "an array of integers"}


def _gguf_type(value: Any) -> str:
    if isinstance(value, SkippedArray):
        return f"an array of {value.count:,} items ({value.item_type})"
    if isinstance(value, (list, *_BYTE_ARRAYS)):
        kinds = sorted({type(item).__name__ for item in value[:1000]})
        return f"an array of {len(value):,} items ({', '.join(kinds) or 'empty'})"
    return f"{type(value).__name__} {str(value)[:40]!r}"


def _byte_level_bpe(fields: dict[str, Any], path: Path) -> GgufTokenizer:
    pre = _value(fields, "tokenizer.ggml.pre", path, None, kind="string")
    if pre not in PRE_TOKENIZERS:
        raise ModelFormatError(
            f"{path.name}: tokenizer.ggml.pre {pre!r} is not a pre-tokenizer tokend knows (known: "
            f"{', '.join(sorted(PRE_TOKENIZERS))}); import the model's tokenizer.json instead"
        )
    regexes, ignore_merges = PRE_TOKENIZERS[pre]
    tokens = _value(fields, "tokenizer.ggml.tokens", path, kind="strings")
    types = _value(fields, "tokenizer.ggml.token_type", path, [_NORMAL] * len(tokens), kind="integers")
    merges = _value(fields, "tokenizer.ggml.merges", path, kind="strings")
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

    return GgufTokenizer(
        payload_format="hf_tokenizer_json",
        payload=json.dumps(document, ensure_ascii=False, indent=None).encode("utf-8"),
        bos_token=_token(fields, "tokenizer.ggml.bos_token_id", tokens),
        eos_token=_token(fields, "tokenizer.ggml.eos_token_id", tokens),
        chat_template=_value(fields, "tokenizer.chat_template", path, None, kind="string"),
        settings={"pre": pre},
    )


def _sentencepiece(fields: dict[str, Any], path: Path) -> GgufTokenizer:
    from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel, dump_sentencepiece_model

    tokens = _value(fields, "tokenizer.ggml.tokens", path, kind="strings")
    if not tokens:
        raise ModelFormatError(f"{path.name}: tokenizer.ggml.tokens is empty")
    scores = _value(fields, "tokenizer.ggml.scores", path, None, kind="numbers") or [0.0] * len(tokens)
    token_types = _value(fields, "tokenizer.ggml.token_type", path, None, kind="integers") or [int(PieceType.NORMAL)] * len(tokens)
    if not len(tokens) == len(scores) == len(token_types):
        raise ModelFormatError(f"{path.name}: tokenizer.ggml.tokens, .scores and .token_type must have the same length")
    types: list[PieceType] = []
    for index, value in enumerate(token_types):
        try:
            types.append(PieceType(int(value) or int(PieceType.NORMAL)))  # 0 (undefined) reads as normal
        except (TypeError, ValueError):
            raise ModelFormatError(f"{path.name}: token {index} {tokens[index]!r} has unknown token_type {value!r}") from None
    types = _one_unknown_piece(fields, types)
    piece_names = {}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        name = _token(fields, f"tokenizer.ggml.{key}", tokens)
        if name is not None:
            piece_names[f"{role}_piece"] = name
    model = SentencePieceModel(
        pieces=tuple(tokens),
        scores=tuple(float(score) for score in scores),
        types=tuple(types),
        normalizer=NormalizerSpec(
            name="identity",
            add_dummy_prefix=bool(_value(fields, "tokenizer.ggml.add_space_prefix", path, True)),
            remove_extra_whitespaces=bool(_value(fields, "tokenizer.ggml.remove_extra_whitespaces", path, False)),
            escape_whitespaces=True,
        ),
        byte_fallback=sum(piece_type == PieceType.BYTE for piece_type in types) == 256,
        **piece_names,
    )
    return GgufTokenizer(
        payload_format="sentencepiece_model",
        payload=dump_sentencepiece_model(model),
        bos_token=_token(fields, "tokenizer.ggml.bos_token_id", tokens),
        eos_token=_token(fields, "tokenizer.ggml.eos_token_id", tokens),
        chat_template=_value(fields, "tokenizer.chat_template", path, None, kind="string"),
        settings={"tokenizer.ggml.model": "llama", "add_space_prefix": model.normalizer.add_dummy_prefix,
                  "byte_fallback": model.byte_fallback},
    )


def _one_unknown_piece(fields: dict[str, Any], types: list[Any]) -> list[Any]:
    """The piece types with exactly one UNKNOWN, as sentencepiece requires: the token
    `tokenizer.ggml.unknown_token_id` names (else the one UNKNOWN token, else id 0: llama.cpp's default for
    "llama" vocabularies) is UNKNOWN, any other UNKNOWN token becomes CONTROL. llama.cpp treats the two types
    alike when it tokenizes (never matched in plain text, matched as special tokens when asked, never reached
    by merges), so this changes no ids. Phi-3's GGUF marks `<unk>` CONTROL and its 53 `[PAD320nn]` tokens
    UNKNOWN: imported as they stand, sentencepiece refused the model."""
    from tokend.engine.sentencepiece import PieceType

    unknown_id = fields.get("tokenizer.ggml.unknown_token_id")
    if not (type(unknown_id) is int and 0 <= unknown_id < len(types)):
        marked = [index for index, piece_type in enumerate(types) if piece_type == PieceType.UNKNOWN]
        unknown_id = marked[0] if len(marked) == 1 else 0
    if types[unknown_id] not in (PieceType.UNKNOWN, PieceType.CONTROL):
        return types  # the id names a normal (or byte) token: the types stand, the model file's checks decide
    return [
        PieceType.UNKNOWN if index == unknown_id else PieceType.CONTROL if piece_type == PieceType.UNKNOWN else piece_type
        for index, piece_type in enumerate(types)
    ]


def _token(fields: dict[str, Any], key: str, tokens: list[str]) -> str | None:
    """The token an id key names (None when absent or out of range)."""
    token_id = fields.get(key)
    return tokens[token_id] if type(token_id) is int and 0 <= token_id < len(tokens) else None


# tokenizer.ggml.model -> converter
CONVERTERS = {"gpt2": _byte_level_bpe, "llama": _sentencepiece}
