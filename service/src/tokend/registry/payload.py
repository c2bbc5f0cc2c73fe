"""Payloads: turning verified bytes into an `Encoding`, and describing new payloads for publishing.

Two payload formats:
- `tiktoken_ranks`: tiktoken's rank file (`base64(token) rank` per line); pattern and special tokens
  come from the manifest. May be stored gzip-compressed (the embedded OpenAI files are).
- `minbpe_model`: minbpe's `.model` text (version line, pattern, special tokens, merges); the manifest
  repeats pattern and special tokens and the loader checks that both agree. An empty pattern line
  (minbpe's BasicTokenizer: no pre-splitting) means the whole text is one piece, `NO_SPLIT_PATTERN`.

Every byte is checked before it is parsed: size and SHA-256 of the stored file, then the SHA-256 of the
decompressed content when the manifest records one.

    >>> content = verify_payload(manifest, stored_bytes)
    >>> encoding = build_encoding(manifest, content)

Not handled: where the bytes come from (sources) and caching (the registry).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any

from tokend.engine import Encoding, load_minbpe_model, load_tiktoken_ranks, merges_to_ranks
from tokend.engine.training import NO_SPLIT_PATTERN
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry import sentencepiece_payload
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.manifest import (
    MANIFEST_FORMAT_VERSION,
    Compression,
    Manifest,
    PayloadFile,
    PayloadFormat,
    Provenance,
    build_manifest,
    utc_now,
)

PAYLOAD_FILE_NAMES: dict[PayloadFormat, str] = {
    "tiktoken_ranks": "ranks.tiktoken",
    "minbpe_model": "merges.model",
    sentencepiece_payload.PAYLOAD_FORMAT: sentencepiece_payload.PAYLOAD_FILE_NAME,
}


def decompress(stored: bytes, compression: Compression, *, what: str) -> bytes:
    if compression == "none":
        return stored
    try:
        return gzip.decompress(stored)
    except (OSError, EOFError, zlib.error) as error:
        raise ModelFormatError(f"payload of {what} is not valid gzip data: {error}") from None


def verify_payload(manifest: Manifest, stored: bytes) -> bytes:
    """Check the stored bytes against the manifest and return the (decompressed) content.

    Raises `ChecksumMismatchError` when a hash or the size differs: the file was altered or truncated.
    """
    what = f"payload {manifest.payload.path} of {manifest.ref}"
    actual = sha256_hex(stored)
    if actual != manifest.payload.sha256 or len(stored) != manifest.payload.size:
        raise ChecksumMismatchError(
            expected=manifest.payload.sha256,
            actual=actual,
            what=what,
        )
    content = decompress(stored, manifest.payload.compression, what=manifest.ref)
    expected_content = manifest.payload.content_sha256
    if expected_content is not None and manifest.payload.compression != "none":
        actual_content = sha256_hex(content)
        if actual_content != expected_content:
            raise ChecksumMismatchError(
                expected=expected_content,
                actual=actual_content,
                what=f"decompressed {what}",
            )
    return content


def build_encoding(manifest: Manifest, content: bytes) -> Encoding:
    """Parse verified payload content into an Encoding named after the manifest.

    Raises `ModelFormatError` when the content does not parse or disagrees with the manifest.
    """
    encoding = _parse_encoding(manifest, content)
    if encoding.n_vocab != manifest.n_vocab:
        raise ModelFormatError(
            f"{manifest.ref}: the payload gives n_vocab {encoding.n_vocab}, the manifest says {manifest.n_vocab}"
        )
    return encoding


def _parse_encoding(manifest: Manifest, content: bytes) -> Encoding:
    if manifest.payload_format == sentencepiece_payload.PAYLOAD_FORMAT:
        return sentencepiece_payload.build_sentencepiece_encoding(manifest, content)
    try:
        if manifest.payload_format == "tiktoken_ranks":
            ranks = load_tiktoken_ranks(content, what=f"rank file of {manifest.ref}")
        else:
            model = load_minbpe_model(_utf8(content, what=manifest.ref))
            if minbpe_pattern(model.pattern) != manifest.pattern or dict(model.special_tokens) != manifest.special_tokens:
                raise ModelFormatError(
                    f"{manifest.ref}: the pattern or special tokens in {manifest.payload.path} differ from the "
                    "manifest; re-publish the model"
                )
            ranks = merges_to_ranks(model.merges)
        encoding = Encoding(
            manifest.name,
            pat_str=manifest.pattern,
            mergeable_ranks=ranks,
            special_tokens=dict(manifest.special_tokens),
            explicit_n_vocab=manifest.explicit_n_vocab,
        )
    except ModelFormatError:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFormatError(f"payload of {manifest.ref} does not load: {error}") from None
    return encoding


def minbpe_pattern(pattern: str) -> str:
    """The split regex a minbpe model means: its pattern, or no splitting for an empty one (BasicTokenizer)."""
    return pattern or NO_SPLIT_PATTERN


def _utf8(content: bytes, *, what: str) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"minbpe model of {what} is not UTF-8 text: {error}") from None


@dataclass(frozen=True)
class NewVersion:
    """A manifest and the exact bytes to store, ready for `Registry.publish_version`."""

    manifest: Manifest
    stored: bytes


def describe_payload(
    *,
    name: str,
    version: int,
    payload_format: PayloadFormat,
    stored: bytes,
    compression: Compression = "none",
    pattern: str | None = None,
    special_tokens: dict[str, int] | None = None,
    explicit_n_vocab: int | None = None,
    expected_content_sha256: str | None = None,
    description: str = "",
    provenance: Provenance | dict[str, Any],
) -> NewVersion:
    """Build the manifest for payload bytes, loading them once to prove they work.

    For `minbpe_model` the pattern and special tokens are read from the payload (passing different
    ones is an error); for `tiktoken_ranks` `pattern` is required. `expected_content_sha256` (e.g.
    tiktoken's published hash) is checked against the decompressed content.

        >>> new = describe_payload(name="cl100k_base", version=1, payload_format="tiktoken_ranks",
        ...                        stored=gz_bytes, compression="gzip", pattern=GPT4_PATTERN,
        ...                        special_tokens={"<|endoftext|>": 100257}, provenance={"kind": "imported"})
    """
    content = decompress(stored, compression, what=f"{name}@{version}")
    content_sha256 = sha256_hex(content)
    if expected_content_sha256 is not None and content_sha256 != expected_content_sha256:
        raise ChecksumMismatchError(
            expected=expected_content_sha256,
            actual=content_sha256,
            what=f"the {payload_format} source file for {name}@{version}",
        )
    if payload_format == "minbpe_model":
        model = load_minbpe_model(_utf8(content, what=f"{name}@{version}"))
        if pattern is not None and pattern != minbpe_pattern(model.pattern):
            raise ModelFormatError(
                f"the minbpe model for {name}@{version} has its own pattern {model.pattern!r}; do not pass "
                "a different --pattern"
            )
        if special_tokens and dict(special_tokens) != dict(model.special_tokens):
            raise ModelFormatError(
                f"the minbpe model for {name}@{version} defines its own special tokens "
                f"{dict(model.special_tokens)}; do not pass different ones"
            )
        pattern, special_tokens = minbpe_pattern(model.pattern), dict(model.special_tokens)
    elif payload_format == sentencepiece_payload.PAYLOAD_FORMAT:
        pattern, special_tokens = sentencepiece_payload.sentencepiece_manifest_fields(
            content, what=f"{name}@{version}", pattern=pattern, special_tokens=special_tokens
        )
    elif pattern is None:
        raise ModelFormatError(
            f"a tiktoken rank file has no split pattern: give one for {name}@{version} (e.g. --pattern gpt4)"
        )
    file_name = PAYLOAD_FILE_NAMES[payload_format] + (".gz" if compression == "gzip" else "")
    draft = build_manifest(
        format_version=MANIFEST_FORMAT_VERSION,
        name=name,
        version=version,
        payload_format=payload_format,
        payload=PayloadFile(
            path=file_name,
            size=len(stored),
            sha256=sha256_hex(stored),
            compression=compression,
            content_sha256=content_sha256 if compression != "none" else None,
        ),
        pattern=pattern,
        special_tokens=dict(special_tokens or {}),
        n_vocab=1,  # placeholder: replaced below by what the payload actually gives
        explicit_n_vocab=explicit_n_vocab,
        created_at=utc_now(),
        description=description,
        provenance=provenance if isinstance(provenance, Provenance) else dict(provenance),
    )
    encoding = _parse_encoding(draft, content)
    return NewVersion(draft.model_copy(update={"n_vocab": encoding.n_vocab}), stored)
