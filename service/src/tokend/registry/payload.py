"""Payloads: turning verified bytes into an `Encoding`, and describing new payloads for publishing.

The formats and what each holds: `payload_formats` (tiktoken rank files, minbpe models, Hugging Face
tokenizer.json, Mistral's tekken.json). Any payload may be stored gzip-compressed (the embedded OpenAI
rank files are).

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

from tokend.engine import Encoding
from tokend.errors import ChecksumMismatchError, ModelFormatError
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
from tokend.registry.payload_formats import PAYLOAD_FILE_NAMES, SELF_DESCRIBING, ParsedPayload, parse_payload


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
    parsed = _parse(manifest.payload_format, content, name=manifest.name, what=manifest.ref,
                    pattern=manifest.pattern, special_tokens=dict(manifest.special_tokens),
                    explicit_n_vocab=manifest.explicit_n_vocab)
    stated = (manifest.pattern, manifest.special_tokens, manifest.normalizer)
    if manifest.payload_format in SELF_DESCRIBING and (parsed.pattern, parsed.special_tokens, parsed.normalizer) != stated:
        raise ModelFormatError(
            f"{manifest.ref}: the pattern, special tokens or normalizer in {manifest.payload.path} differ from the "
            "manifest; re-publish the model"
        )
    _check_named_tokens(parsed.encoding, manifest.bos_token, manifest.eos_token, what=manifest.ref)
    return parsed.encoding


def _parse(payload_format: PayloadFormat, content: bytes, *, name: str, what: str, **manifest_fields: Any) -> ParsedPayload:
    try:
        return parse_payload(payload_format, content, name=name, **manifest_fields)
    except ModelFormatError:
        raise
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFormatError(f"payload of {what} does not load: {error}") from None


def _check_named_tokens(encoding: Encoding, bos_token: str | None, eos_token: str | None, *, what: str) -> None:
    for role, token in (("bos_token", bos_token), ("eos_token", eos_token)):
        if token is not None:
            try:
                encoding.encode_single_token(token)
            except KeyError:
                raise ModelFormatError(f"{what}: {role} {token!r} is not a token of the model") from None


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
    bos_token: str | None = None,
    eos_token: str | None = None,
    chat_template: str | None = None,
    shared_with: Manifest | None = None,
) -> NewVersion:
    """Build the manifest for payload bytes, loading them once to prove they work.

    The self-describing formats (minbpe, tokenizer.json, tekken.json) bring their pattern and special
    tokens (passing different ones is an error); for `tiktoken_ranks` `pattern` is required.
    `expected_content_sha256` (e.g. tiktoken's published hash) is checked against the decompressed
    content. BOS/EOS default to the ones the file names. `shared_with`: the manifest of a version of the
    same registry whose payload has the same content; the new version then refers to that file instead of
    storing a copy (`stored` is still checked and parsed, never written).

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
    what = f"{name}@{version}"
    parsed = _parse(payload_format, content, name=name, what=what, pattern=pattern,
                    special_tokens=dict(special_tokens) if special_tokens is not None else None,
                    explicit_n_vocab=explicit_n_vocab)
    if payload_format in SELF_DESCRIBING:
        if pattern is not None and pattern != parsed.pattern:
            raise ModelFormatError(
                f"the {payload_format} payload for {what} has its own pattern {parsed.pattern!r}; do not pass a "
                "different --pattern"
            )
        if special_tokens and dict(special_tokens) != parsed.special_tokens:
            raise ModelFormatError(
                f"the {payload_format} payload for {what} defines its own special tokens; do not pass different ones"
            )
    bos_token = bos_token if bos_token is not None else parsed.bos_token
    eos_token = eos_token if eos_token is not None else parsed.eos_token
    _check_named_tokens(parsed.encoding, bos_token, eos_token, what=what)
    file_name = PAYLOAD_FILE_NAMES[payload_format] + (".gz" if compression == "gzip" else "")
    payload = PayloadFile(
        path=file_name,
        size=len(stored),
        sha256=sha256_hex(stored),
        compression=compression,
        content_sha256=content_sha256 if compression != "none" else None,
    )
    if shared_with is not None:
        payload = _shared_payload(shared_with, content_sha256, what=what)
    draft = build_manifest(
        format_version=MANIFEST_FORMAT_VERSION,
        name=name,
        version=version,
        payload_format=payload_format,
        payload=payload,
        pattern=parsed.pattern,
        special_tokens=parsed.special_tokens,
        n_vocab=parsed.encoding.n_vocab,
        explicit_n_vocab=explicit_n_vocab,
        created_at=utc_now(),
        description=description,
        provenance=provenance if isinstance(provenance, Provenance) else dict(provenance),
        normalizer=parsed.normalizer,
        bos_token=bos_token,
        eos_token=eos_token,
        chat_template=chat_template,
    )
    return NewVersion(draft, stored)


def _shared_payload(owner: Manifest, content_sha256: str, *, what: str) -> PayloadFile:
    """The owner's payload file, for a version that shares it (its content must be the same)."""
    owner_content = owner.payload.content_sha256 or owner.payload.sha256
    if owner.payload.shared_with is not None:
        raise ModelFormatError(f"{owner.ref} shares its payload itself; share {owner.payload.shared_with}'s instead")
    if owner_content != content_sha256:
        raise ModelFormatError(
            f"{what} cannot share the payload of {owner.ref}: the contents differ (sha256 {content_sha256} vs "
            f"{owner_content})"
        )
    return owner.payload.model_copy(update={"shared_with": owner.ref})
