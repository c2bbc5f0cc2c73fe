"""Payloads: turning verified bytes into an `Encoding`, and describing new payloads for publishing.

Two payload formats:
- `tiktoken_ranks`: tiktoken's rank file (`base64(token) rank` per line); pattern and special tokens
  come from the manifest. May be stored gzip-compressed (the embedded OpenAI files are).
- `minbpe_model`: minbpe's `.model` text (version line, pattern, special tokens, merges); the manifest
  repeats pattern and special tokens and the loader checks that both agree. An empty pattern line
  (minbpe's BasicTokenizer: no pre-splitting) means the whole text is one piece, `NO_SPLIT_PATTERN`.

Every byte is checked before it is parsed: size and SHA-256 of the stored file (`check_stored_payload`),
then the size and SHA-256 of the decompressed content when the manifest records them (`unpack_payload`).
Inflating stops one byte past the recorded content size, or past `size_limits.MAX_PAYLOAD_BYTES`.

    >>> import gzip
    >>> from tokend import dump_tiktoken_ranks
    >>> stored = gzip.compress(dump_tiktoken_ranks({bytes([i]): i for i in range(256)} | {b"hi": 256}))
    >>> manifest = describe_payload(name="toy", version=1, payload_format="tiktoken_ranks", stored=stored,
    ...                             compression="gzip", pattern=r"\\S+|\\s+", provenance={"kind": "imported"}).manifest
    >>> content = verify_payload(manifest, stored)     # = check_stored_payload + unpack_payload
    >>> encoding = build_encoding(manifest, content)
    >>> encoding.encode("hi hix")
    [256, 32, 256, 120]
    >>> verify_payload(manifest, stored[:-1])          # a truncated file
    Traceback (most recent call last):
    tokend.errors.ChecksumMismatchError: SHA-256 mismatch for payload ranks.tiktoken.gz of toy@1 (... bytes where ...

Once the stored bytes match the manifest's SHA-256, everything after (inflating, content checks,
parsing) is a function of the manifest alone: the registry remembers such failures by manifest digest.

Not handled: where the bytes come from (sources) and caching (the registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokend.engine import Encoding, load_minbpe_model, load_tiktoken_ranks, merges_to_ranks
from tokend.engine.training import NO_SPLIT_PATTERN
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.chat import ChatEncoder, ChatFormatSpec, build_chat_format
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
from tokend.registry.size_limits import MAX_PAYLOAD_BYTES, gunzip_at_most

PAYLOAD_FILE_NAMES: dict[PayloadFormat, str] = {
    "tiktoken_ranks": "ranks.tiktoken",
    "minbpe_model": "merges.model",
}


def decompress(stored: bytes, compression: Compression, *, what: str, limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The content of a stored payload; gzip is inflated up to `limit` bytes (ModelFormatError beyond)."""
    if compression == "none":
        return stored
    return gunzip_at_most(stored, limit=min(limit, MAX_PAYLOAD_BYTES), what=what)


def check_payload_limits(manifest: Manifest) -> None:
    """Raise `ModelFormatError` when the manifest itself asks for more than tokend reads (checked before
    anything is read: a manifest claiming gigabytes costs nothing)."""
    payload = manifest.payload
    for what, size in (("a payload", payload.size), ("content", payload.content_size)):
        if size is not None and size > MAX_PAYLOAD_BYTES:
            raise ModelFormatError(
                f"{manifest.ref}: the manifest gives {what} of {size:,} bytes, above tokend's limit of "
                f"{MAX_PAYLOAD_BYTES:,} bytes (size_limits.MAX_PAYLOAD_BYTES)"
            )


def check_stored_payload(manifest: Manifest, stored: bytes) -> None:
    """Raise `ChecksumMismatchError` unless `stored` has the manifest's size and SHA-256 (the file was
    altered, truncated or is another file). Sources read at most size + 1 bytes, so an oversized file
    is refused here without having been read whole."""
    check_payload_limits(manifest)
    payload = manifest.payload
    what = f"payload {payload.path} of {manifest.ref}"
    if len(stored) != payload.size:
        found = f"more than {payload.size:,}" if len(stored) > payload.size else f"{len(stored):,}"
        what += f" ({found} bytes where the manifest gives {payload.size:,})"
    actual = sha256_hex(stored)
    if actual != payload.sha256 or len(stored) != payload.size:
        raise ChecksumMismatchError(expected=payload.sha256, actual=actual, what=what)


def unpack_payload(manifest: Manifest, stored: bytes) -> bytes:
    """The content of stored bytes that passed `check_stored_payload`: inflated (stopping one byte past
    the manifest's content_size, or the global cap) and checked against content_size / content_sha256."""
    check_payload_limits(manifest)
    payload = manifest.payload
    if payload.compression == "none":
        return stored
    limit = payload.content_size if payload.content_size is not None else MAX_PAYLOAD_BYTES
    content = decompress(stored, payload.compression, what=manifest.ref, limit=limit)
    if payload.content_size is not None and len(content) != payload.content_size:
        raise ModelFormatError(
            f"payload of {manifest.ref} inflates to {len(content):,} bytes, the manifest says {payload.content_size:,}"
        )
    if payload.content_sha256 is not None:
        actual_content = sha256_hex(content)
        if actual_content != payload.content_sha256:
            raise ChecksumMismatchError(
                expected=payload.content_sha256,
                actual=actual_content,
                what=f"decompressed payload {payload.path} of {manifest.ref}",
            )
    return content


def stored_read_limit(manifest: Manifest) -> int:
    """How many bytes a source reads of a payload at most, minus one: the manifest's size, capped."""
    return min(manifest.payload.size, MAX_PAYLOAD_BYTES)


def verify_payload(manifest: Manifest, stored: bytes) -> bytes:
    """Check the stored bytes against the manifest and return the (decompressed) content.

    Raises `ChecksumMismatchError` when a hash or the size differs (the file was altered or truncated),
    `ModelFormatError` when the content is over a limit or not valid gzip.
    """
    check_stored_payload(manifest, stored)
    return unpack_payload(manifest, stored)


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
    chat_format: ChatFormatSpec | dict[str, Any] | None = None,
) -> NewVersion:
    """Build the manifest for payload bytes, loading them once to prove they work.

    For `minbpe_model` the pattern and special tokens are read from the payload (passing different
    ones is an error); for `tiktoken_ranks` `pattern` is required. `expected_content_sha256` (e.g.
    tiktoken's published hash) is checked against the decompressed content. `chat_format` (see
    registry.chat.spec) is checked against the payload: it must compile and the model must define every
    special token the format emits.

        >>> import gzip
        >>> from tokend import GPT4_PATTERN, dump_tiktoken_ranks
        >>> ranks = {bytes([i]): i for i in range(256)} | {b"hi": 256}
        >>> new = describe_payload(name="toy", version=1, payload_format="tiktoken_ranks",
        ...                        stored=gzip.compress(dump_tiktoken_ranks(ranks)), compression="gzip",
        ...                        pattern=GPT4_PATTERN, special_tokens={"<|endoftext|>": 257},
        ...                        provenance={"kind": "imported", "source": "toy.tiktoken"})
        >>> new.manifest.ref, new.manifest.n_vocab, new.manifest.payload.path
        ('toy@1', 258, 'ranks.tiktoken.gz')
        >>> new.manifest.payload.content_size == len(dump_tiktoken_ranks(ranks))
        True
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
            content_size=len(content) if compression != "none" else None,
        ),
        pattern=pattern,
        special_tokens=dict(special_tokens or {}),
        n_vocab=1,  # placeholder: replaced below by what the payload actually gives
        explicit_n_vocab=explicit_n_vocab,
        created_at=utc_now(),
        description=description,
        provenance=provenance if isinstance(provenance, Provenance) else dict(provenance),
        chat_format=chat_format,
    )
    encoding = _parse_encoding(draft, content)
    build_chat_encoder(draft, encoding)
    return NewVersion(draft.model_copy(update={"n_vocab": encoding.n_vocab}), stored)


def build_chat_encoder(manifest: Manifest, encoding: Encoding) -> ChatEncoder | None:
    """The manifest's chat format bound to its encoding (None without one); ModelFormatError when they do
    not fit (a template that does not compile, a special token the model lacks)."""
    if manifest.chat_format is None:
        return None
    return ChatEncoder(encoding, build_chat_format(manifest.chat_format), ref=manifest.ref)
