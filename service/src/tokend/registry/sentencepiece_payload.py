"""The `sentencepiece_model` payload: a sentencepiece `.model` file (ModelProto bytes) stored as it is.

The payload is the model file itself (as `spm_train` wrote it, or as the GGUF importer rebuilt it), so the
stored artifact is exactly what sentencepiece loads. The manifest repeats what can be read from it and the
loader checks that both agree:
- `pattern` is "" (SentencePiece has no split regex: the normalizer and the merges do the work);
- `special_tokens` are the model's CONTROL and UNKNOWN pieces (`<s>`, `</s>`, `<unk>`, `[INST]`, ...);
- `n_vocab` is the number of pieces.
Everything else a front-end may show (algorithm, bos/eos/unk/pad ids, normalizer name) is derived from the
payload when it loads (`SentencePieceEncoding.bos_id`, ...), not duplicated in the manifest.

    >>> fields = sentencepiece_manifest_fields(model_bytes, what="mistral@1")   # doctest: +SKIP
    >>> fields.pattern, fields.special_tokens["<s>"]                            # doctest: +SKIP
    ('', 1)
"""

from __future__ import annotations

from typing import NamedTuple

from tokend.errors import ModelFormatError

__all__ = ["PAYLOAD_FORMAT", "PAYLOAD_FILE_NAME", "SentencePieceFields", "sentencepiece_manifest_fields", "build_sentencepiece_encoding"]

PAYLOAD_FORMAT = "sentencepiece_model"
PAYLOAD_FILE_NAME = "tokenizer.model"


class SentencePieceFields(NamedTuple):
    pattern: str
    special_tokens: dict[str, int]


def sentencepiece_manifest_fields(
    content: bytes,
    *,
    what: str,
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
) -> SentencePieceFields:
    """The manifest's pattern and special tokens for a `.model` payload; given values must agree with it."""
    from tokend.engine.sentencepiece import SentencePieceEncoding

    encoding = SentencePieceEncoding.from_model_file(what, content)
    if pattern:
        raise ModelFormatError(f"a sentencepiece model has no split pattern: do not pass one for {what}")
    if special_tokens and dict(special_tokens) != dict(encoding.special_tokens):
        raise ModelFormatError(
            f"the sentencepiece model for {what} defines its own special tokens (its CONTROL and UNKNOWN pieces); "
            "do not pass different ones"
        )
    return SentencePieceFields("", dict(encoding.special_tokens))


def build_sentencepiece_encoding(manifest, content: bytes):
    """The `SentencePieceEncoding` of verified payload content; `ModelFormatError` when it disagrees with `manifest`."""
    from tokend.engine.sentencepiece import SentencePieceEncoding

    encoding = SentencePieceEncoding.from_model_file(manifest.name, content)
    if manifest.pattern or dict(manifest.special_tokens) != dict(encoding.special_tokens):
        raise ModelFormatError(
            f"{manifest.ref}: the pattern or special tokens in the manifest differ from the sentencepiece model in "
            f"{manifest.payload.path}; re-publish the model"
        )
    return encoding
