"""Importing the tokenizer inside a GGUF file (llama.cpp's model format) as a registry payload.

    >>> imported = import_gguf_tokenizer(Path("ggml-vocab-llama-spm.gguf"))     # doctest: +SKIP
    >>> imported.payload_format, imported.settings["tokenizer.ggml.model"]      # doctest: +SKIP
    ('sentencepiece_model', 'llama')

The file's `tokenizer.ggml.model` says which algorithm its vocabulary is for; this module dispatches on it in
one place (`_IMPORTERS`). Handled here: `"llama"` — SentencePiece BPE (Llama 1/2, Mistral 7B, their fine-tunes),
rebuilt as a sentencepiece `.model` file (ModelProto) from `tokenizer.ggml.tokens`, `.scores` and `.token_type`
(GGUF's token types are sentencepiece's piece types), with the normalizer llama.cpp applies to such models:
no character map, a dummy prefix unless `tokenizer.ggml.add_space_prefix` is false, spaces as `▁`, extra
whitespace kept unless `tokenizer.ggml.remove_extra_whitespaces` is true. Byte fallback is on when the
vocabulary has all 256 `<0xNN>` byte pieces; the BOS/EOS/padding pieces are the tokens the ids name.

Refused with `ModelFormatError`: a file that is not GGUF, a missing or inconsistent tokenizer key, and any
other `tokenizer.ggml.model` (naming it). The file is read with the `gguf` package (llama.cpp's own reader),
which maps it into memory: only the metadata is touched, so a multi-gigabyte model file costs no RAM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tokend.errors import ModelFormatError

__all__ = ["ImportedTokenizer", "import_gguf_tokenizer", "read_gguf_metadata"]


@dataclass(frozen=True)
class ImportedTokenizer:
    """A payload ready for `Registry.publish`, and what the conversion read (for the provenance)."""

    payload_format: str
    payload: bytes
    settings: dict[str, Any] = field(default_factory=dict)


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """The `tokenizer.*` and `general.*` keys of a GGUF file as Python values (lists for arrays)."""
    try:
        from gguf import GGUFReader
    except ImportError as error:  # a dependency of the service: only a broken installation lacks it
        raise ModelFormatError(f"reading GGUF files needs the `gguf` package: {error}") from None
    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError, IndexError, KeyError) as error:
        raise ModelFormatError(f"{path.name} is not a readable GGUF file: {error}") from None
    metadata: dict[str, Any] = {}
    for key, value in reader.fields.items():
        if key.startswith(("tokenizer.", "general.")):
            try:
                metadata[key] = value.contents()
            except (ValueError, IndexError, UnicodeDecodeError) as error:
                raise ModelFormatError(f"{path.name}: GGUF key {key} does not decode: {error}") from None
    return metadata


def import_gguf_tokenizer(path: Path) -> ImportedTokenizer:
    """Convert the tokenizer of the GGUF file at `path` into a payload (see the module docstring)."""
    metadata = read_gguf_metadata(path)
    kind = metadata.get("tokenizer.ggml.model")
    importer = _IMPORTERS.get(kind) if isinstance(kind, str) else None
    if importer is None:
        raise ModelFormatError(
            f"{path.name}: tokenizer.ggml.model is {kind!r}; tokend imports GGUF tokenizers of type "
            f"{', '.join(repr(k) for k in sorted(_IMPORTERS))}"
        )
    return importer(path, metadata)


def _sentencepiece_from_llama(path: Path, metadata: dict[str, Any]) -> ImportedTokenizer:
    from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel, dump_sentencepiece_model

    what = path.name
    tokens = _required(metadata, "tokenizer.ggml.tokens", list, what)
    scores = metadata.get("tokenizer.ggml.scores") or [0.0] * len(tokens)
    token_types = metadata.get("tokenizer.ggml.token_type") or [int(PieceType.NORMAL)] * len(tokens)
    if not isinstance(scores, list) or not isinstance(token_types, list) or not len(tokens) == len(scores) == len(token_types):
        raise ModelFormatError(f"{what}: tokenizer.ggml.tokens, .scores and .token_type must have the same length")
    types: list[PieceType] = []
    for index, value in enumerate(token_types):
        try:
            types.append(PieceType(int(value) or int(PieceType.NORMAL)))  # 0 (undefined) reads as normal
        except ValueError:
            raise ModelFormatError(f"{what}: token {index} {tokens[index]!r} has unknown token_type {value}") from None
    byte_pieces = {piece for piece, piece_type in zip(tokens, types) if piece_type == PieceType.BYTE}
    piece_names = {}
    for role, key in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "padding_token_id"), ("unk", "unknown_token_id")):
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            piece_names[f"{role}_piece"] = tokens[token_id]
    model = SentencePieceModel(
        pieces=tuple(str(token) for token in tokens),
        scores=tuple(float(score) for score in scores),
        types=tuple(types),
        normalizer=NormalizerSpec(
            name="identity",
            add_dummy_prefix=bool(metadata.get("tokenizer.ggml.add_space_prefix", True)),
            remove_extra_whitespaces=bool(metadata.get("tokenizer.ggml.remove_extra_whitespaces", False)),
            escape_whitespaces=True,
        ),
        byte_fallback=len(byte_pieces) == 256,
        **piece_names,
    )
    payload = dump_sentencepiece_model(model)
    settings = {
        "tokenizer.ggml.model": "llama",
        "general.name": metadata.get("general.name"),
        "add_space_prefix": model.normalizer.add_dummy_prefix,
        "byte_fallback": model.byte_fallback,
    }
    return ImportedTokenizer("sentencepiece_model", payload, settings)


def _required(metadata: dict[str, Any], key: str, kind: type, what: str) -> Any:
    value = metadata.get(key)
    if not isinstance(value, kind) or not value:
        raise ModelFormatError(f"{what}: GGUF key {key} is missing or empty")
    return value


# tokenizer.ggml.model -> importer
_IMPORTERS: dict[str, Callable[[Path, dict[str, Any]], ImportedTokenizer]] = {
    "llama": _sentencepiece_from_llama,
}
