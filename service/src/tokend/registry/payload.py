"""Payloads: turning verified bytes into an `Encoding`, and describing new payloads for publishing.

The formats and what each holds: `payload_formats` (tiktoken rank files, minbpe models, Hugging Face
tokenizer.json, Mistral's tekken.json, sentencepiece `.model` files). Any payload may be stored gzip-compressed (the embedded OpenAI
rank files are).

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
from typing import TYPE_CHECKING, Any

from tokend.engine import Encoding
from tokend.errors import ChecksumMismatchError, ModelFormatError
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.chat.spec import ChatFormatSpec, build_chat_format
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
from tokend.registry.size_limits import MAX_PAYLOAD_BYTES, gunzip_at_most

if TYPE_CHECKING:
    from tokend.engine.sentencepiece import SentencePieceEncoding
    from tokend.registry.chat.chat_format import ChatEncoder


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


def build_encoding(manifest: Manifest, content: bytes) -> Encoding | SentencePieceEncoding:
    """Parse verified payload content into an Encoding named after the manifest.

    Raises `ModelFormatError` when the content does not parse or disagrees with the manifest.
    """
    encoding = _parse_encoding(manifest, content)
    if encoding.n_vocab != manifest.n_vocab:
        raise ModelFormatError(
            f"{manifest.ref}: the payload gives n_vocab {encoding.n_vocab}, the manifest says {manifest.n_vocab}"
        )
    return encoding


def _parse_encoding(manifest: Manifest, content: bytes) -> Encoding | SentencePieceEncoding:
    parsed = _parse(manifest.payload_format, content, name=manifest.name, what=manifest.ref,
                    pattern=manifest.pattern, special_tokens=dict(manifest.special_tokens),
                    explicit_n_vocab=manifest.explicit_n_vocab)
    stated = (manifest.pattern, manifest.special_tokens, manifest.normalizer)
    found = (parsed.pattern, parsed.special_tokens, parsed.normalizer)
    # UNK/PAD are checked where the manifest states them (a manifest written before it did stays readable).
    stated_roles = [(getattr(manifest, role), getattr(parsed, role)) for role in ("unk_token", "pad_token")]
    roles_differ = any(stated_token is not None and stated_token != token for stated_token, token in stated_roles)
    if manifest.payload_format in SELF_DESCRIBING and (
        found != stated or (parsed.family or manifest.family) != manifest.family or roles_differ
    ):
        raise ModelFormatError(
            f"{manifest.ref}: the pattern, special tokens, normalizer, family or UNK/PAD token in "
            f"{manifest.payload.path} differ from the manifest; re-publish the model"
        )
    _check_named_tokens(parsed.encoding, _named_tokens(manifest), what=manifest.ref)
    return parsed.encoding


def _parse(payload_format: PayloadFormat, content: bytes, *, name: str, what: str, **manifest_fields: Any) -> ParsedPayload:
    try:
        return parse_payload(payload_format, content, name=name, **manifest_fields)
    except ModelFormatError:
        raise
    except RecursionError:
        raise ModelFormatError(f"payload of {what} does not load: it nests too deeply") from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as error:
        # A parser's own checks name the field; this catches what they miss, so a hostile file is a
        # ModelFormatError (MODEL_BROKEN), never an internal error.
        raise ModelFormatError(f"payload of {what} does not load: {type(error).__name__}: {str(error)[:200]}") from None


def _named_tokens(manifest: Manifest) -> dict[str, str | None]:
    return {role: getattr(manifest, role) for role in ("bos_token", "eos_token", "unk_token", "pad_token")}


def _check_named_tokens(encoding: Encoding | SentencePieceEncoding, named: dict[str, str | None], *, what: str) -> None:
    for role, token in named.items():
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
    family: str | None = None,
    chat_format: ChatFormatSpec | dict[str, Any] | None = None,
) -> NewVersion:
    """Build the manifest for payload bytes, loading them once to prove they work.

    The self-describing formats (minbpe, tokenizer.json, tekken.json) bring their pattern and special
    tokens (passing different ones is an error); for `tiktoken_ranks` `pattern` is required.
    `expected_content_sha256` (e.g. tiktoken's published hash) is checked against the decompressed
    content. BOS/EOS default to the ones the file names; UNK/PAD are the ones the file names. `shared_with`: the manifest of a version of the
    same registry whose payload has the same content; the new version then refers to that file instead of
    storing a copy (`stored` is still checked and parsed, never written). `family` is written as given
    (None: left out, meaning byte-level BPE), except that a payload of another family states its own
    (a sentencepiece model: `sentencepiece-bpe` or `sentencepiece-unigram`). `chat_format` (see
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
    if parsed.family is not None:
        if family is not None and family != parsed.family:
            raise ModelFormatError(f"the {payload_format} payload for {what} is a {parsed.family} model, not {family}")
        family = parsed.family
    _check_named_tokens(parsed.encoding, {"bos_token": bos_token, "eos_token": eos_token}, what=what)
    file_name = PAYLOAD_FILE_NAMES[payload_format] + (".gz" if compression == "gzip" else "")
    payload = PayloadFile(
        path=file_name,
        size=len(stored),
        sha256=sha256_hex(stored),
        compression=compression,
        content_sha256=content_sha256 if compression != "none" else None,
        content_size=len(content) if compression != "none" else None,
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
        unk_token=parsed.unk_token,
        pad_token=parsed.pad_token,
        chat_template=chat_template,
        family=family,
        chat_format=chat_format,
    )
    build_chat_encoder(draft, parsed.encoding)
    return NewVersion(draft, stored)


def build_chat_encoder(manifest: Manifest, encoding: Encoding | SentencePieceEncoding) -> ChatEncoder | None:
    """The manifest's chat format bound to its encoding (None without one); ModelFormatError when they do
    not fit (a template that does not compile, a special token the model lacks)."""
    if manifest.chat_format is None:
        return None
    from tokend.registry.chat.chat_format import ChatEncoder  # the renderers: only for a model that chats

    return ChatEncoder(encoding, build_chat_format(manifest.chat_format), ref=manifest.ref)


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
    return owner.payload.replace(shared_with=owner.ref)
