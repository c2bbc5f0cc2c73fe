"""The manifest: the self-description stored next to every published model version.

A version directory holds `manifest.json` and one payload file. The manifest says what the payload is
(`tiktoken_ranks`, `minbpe_model`, `hf_tokenizer_json`, `tekken_json` or `sentencepiece_model`), how to
split text (`pattern`; "" for SentencePiece, which has no split regex), which special tokens exist with
which ids, the vocabulary size, the SHA-256 of the payload as stored (and, for a gzip-compressed payload,
of its decompressed content: for OpenAI's files that is the hash tiktoken publishes, and its size), when
it was made and from what (provenance); and, where the model has them, its
BOS/EOS tokens (which `encode` never adds), UNK/PAD tokens, normalizer, family (`sentencepiece-bpe`,
`sentencepiece-unigram`; absent for byte-level BPE) and chat template, and optionally how chats are
rendered (`chat_format`, see registry.chat.spec).

A version may share the payload file of another version of the same registry (`payload.shared_with`,
e.g. o200k_harmony@1 uses o200k_base@1's rank file): the file stays in that version's directory and the
hashes in this manifest cover it. Published versions never change, so the bytes never move under it.

    >>> from tokend.registry.registry import EMBEDDED_REGISTRY_DIR
    >>> path = EMBEDDED_REGISTRY_DIR / "cl100k_base" / "1" / "manifest.json"
    >>> manifest = parse_manifest(path.read_bytes(), what="cl100k_base@1")
    >>> manifest.ref, manifest.payload_format, manifest.payload.path, manifest.n_vocab
    ('cl100k_base@1', 'tiktoken_ranks', 'ranks.tiktoken.gz', 100277)
    >>> manifest.payload.content_sha256          # tiktoken's published hash of cl100k_base.tiktoken
    '223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7'

Loaders refuse a manifest whose `format_version` they do not know (`ModelFormatError`), so a future layout
can never be half-understood. Not handled here: reading files or checking hashes (see `payload`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from tokend.errors import ModelFormatError
from tokend.registry.chat.spec import ChatFormatSpec
from tokend.registry.document_fields import (
    FieldError,
    check_choice,
    check_datetime,
    check_int,
    check_json_object,
    check_str,
    from_document,
    json_value,
    nested,
)

# The only manifest layout this code reads and writes. Bump it when the meaning of a field changes.
MANIFEST_FORMAT_VERSION = 1

PayloadFormat = Literal["tiktoken_ranks", "minbpe_model", "hf_tokenizer_json", "tekken_json", "sentencepiece_model"]
# Fields added after format_version 1 was first written: left out of the file while unset, so a manifest
# that does not use them stays readable by every tokend that reads format_version 1.
_OPTIONAL_FIELDS = (
    "family", "normalizer", "bos_token", "eos_token", "unk_token", "pad_token", "chat_template", "chat_format",
)
_OPTIONAL_PAYLOAD_FIELDS = ("content_size", "shared_with")
DEFAULT_FAMILY = "byte_level_bpe"
Compression = Literal["none", "gzip"]

_SHA256 = re.compile(r"^[0-9a-f]{64}\Z")
# Names end up as directory names and in `name@ref` strings: keep them portable and unambiguous. (\Z, not $:
# `$` also matches before a final newline, which would let "name\n" through.)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_PAYLOAD_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def validate_model_name(name: str) -> str:
    """Return `name` if it can name a model, else raise ValueError saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".tmp", ".partial")):
        raise ValueError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no '@' or '/')"
        )
    return name


def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(cls))


def _set(record: Any, name: str, value: Any) -> None:
    object.__setattr__(record, name, value)  # a frozen record normalising its own fields while it is built


def _sha256(value: Any, where: str, *, optional: bool = False) -> str | None:
    value = check_str(value, where, optional=optional)
    if value is not None and not _SHA256.match(value):
        raise FieldError(f"{where}: {value!r} is not a lowercase hex SHA-256 digest")
    return value


def _document(record: Any, *, omit_unset: tuple[str, ...] = ()) -> dict[str, Any]:
    """The record's fields as JSON data, in declaration order; `omit_unset` fields only when set."""
    return {
        item.name: json_value(getattr(record, item.name))
        for item in dataclasses.fields(record)
        if not (item.name in omit_unset and getattr(record, item.name) is None)
    }


@dataclass(frozen=True)
class PayloadFile:
    """The payload file of a version: where it is and what its bytes hash to."""

    path: str  # file name inside the version directory, e.g. "ranks.tiktoken.gz"
    size: int  # bytes as stored
    sha256: str  # of the bytes as stored
    compression: Compression = "none"
    # SHA-256 of the decompressed content; for OpenAI's rank files this is tiktoken's published hash.
    content_sha256: str | None = None
    # Bytes of the decompressed content: inflating stops one byte past it (absent in older manifests:
    # then only the global cap, size_limits.MAX_PAYLOAD_BYTES, bounds it).
    content_size: int | None = None
    # "name@version" of the version of this registry whose directory holds the file (None: this one's).
    shared_with: str | None = None

    def __post_init__(self) -> None:
        path = check_str(self.path, "path")
        if not _PAYLOAD_FILE.match(path) or path == "manifest.json":
            raise FieldError(f"path: payload path {path!r} must be a plain file name inside the version directory")
        check_int(self.size, "size", minimum=0)
        _sha256(self.sha256, "sha256")
        check_choice(self.compression, "compression", get_args(Compression))
        _sha256(self.content_sha256, "content_sha256", optional=True)
        check_int(self.content_size, "content_size", minimum=0, optional=True)
        if check_str(self.shared_with, "shared_with", optional=True) is not None:
            name, _, version = self.shared_with.partition("@")
            try:
                validate_model_name(name)
            except ValueError as error:
                raise FieldError(f"shared_with: {error}") from None
            if not (version.isascii() and version.isdigit()) or version.startswith("0"):  # "²" is a digit to isdigit
                raise FieldError(f"shared_with: {self.shared_with!r} must name an exact version, e.g. o200k_base@1")

    @classmethod
    def from_document(cls, document: Any, *, where: str = "payload") -> PayloadFile:
        return from_document(cls, document, known=_field_names(cls), required=("path", "size", "sha256"), where=where)

    def owner(self, name: str, version: int) -> tuple[str, int]:
        """(name, version) of the directory that holds the file, for the version `name@version`."""
        if self.shared_with is None:
            return name, version
        owner_name, _, owner_version = self.shared_with.partition("@")
        return owner_name, int(owner_version)

    def replace(self, **changes: Any) -> PayloadFile:
        """A copy with `changes` (checked like any new record)."""
        return dataclasses.replace(self, **changes)

    def to_document(self) -> dict[str, Any]:
        return _document(self, omit_unset=_OPTIONAL_PAYLOAD_FIELDS)


@dataclass(frozen=True, init=False)
class Provenance:
    """Where the payload came from. `kind` is "imported" or "trained"; the rest depends on it.

    imported: `source` (file name), `source_sha256`, `source_url` (if known).
    trained:  `inputs` ([{"path", "sha256", "size"}]), `settings` (vocab size, pattern, special tokens),
              `command` (the exact command line that reproduces it).
    Any other field (`license`, `sources`, ...) is kept, in order, and readable as an attribute.

        >>> Provenance(kind="imported", source="x.json", license="MIT").license
        'MIT'
    """

    kind: Literal["imported", "trained"]
    command: str | None
    tool: str | None  # e.g. "tokend 0.1.0"
    source: str | None
    source_sha256: str | None
    source_url: str | None
    inputs: list[dict[str, Any]]
    settings: dict[str, Any]
    extra: dict[str, Any]  # the other fields, in the order given

    def __init__(
        self, /, kind: str, command: str | None = None, tool: str | None = None, source: str | None = None,
        source_sha256: str | None = None, source_url: str | None = None, inputs: list[dict[str, Any]] | None = None,
        settings: dict[str, Any] | None = None, **extra: Any,
    ) -> None:  # fmt: skip
        # `self` is positional-only, so a provenance field named "self" is one more extra field.
        _set(self, "kind", check_choice(kind, "kind", ("imported", "trained")))
        for name, value in (("command", command), ("tool", tool), ("source", source), ("source_url", source_url)):
            _set(self, name, check_str(value, name, optional=True))
        _set(self, "source_sha256", check_str(source_sha256, "source_sha256", optional=True))
        inputs = [] if inputs is None else inputs
        if not isinstance(inputs, list) or not all(isinstance(item, dict) for item in inputs):
            raise FieldError("inputs: must be a list of objects")
        _set(self, "inputs", list(inputs))
        _set(self, "settings", check_json_object({} if settings is None else settings, "settings"))
        _set(self, "extra", dict(extra))

    def __getattr__(self, name: str) -> Any:  # only for names that are not fields: the extra ones
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"provenance has no field {name!r}")

    @classmethod
    def from_document(cls, document: Any, *, where: str = "provenance") -> Provenance:
        return from_document(cls, document, known=(), required=("kind",), where=where, extra=True)

    def to_document(self, *, exclude_none: bool = False) -> dict[str, Any]:
        document = {name: json_value(getattr(self, name)) for name in _field_names(Provenance) if name != "extra"}
        document.update(json_value(self.extra))
        return {key: value for key, value in document.items() if value is not None} if exclude_none else document


@dataclass(frozen=True)
class Manifest:
    """Everything needed to turn a payload into an `Encoding`, plus where it came from. Build one with
    `build_manifest(...)` and read one with `parse_manifest(...)` (both name the bad field on error)."""

    format_version: int
    name: str
    version: int
    payload_format: PayloadFormat
    payload: PayloadFile
    pattern: str  # the pre-split regex
    n_vocab: int  # max token id + 1, as tiktoken's Encoding.n_vocab
    created_at: datetime
    provenance: Provenance
    special_tokens: dict[str, int] = field(default_factory=dict)  # token text -> id
    # Passed to Encoding(explicit_n_vocab=...) when set: the loader then checks the vocabulary size.
    explicit_n_vocab: int | None = None
    description: str = ""
    # How the payload tokenizes: "byte_level_bpe" (None: that), "sentencepiece-bpe", "sentencepiece-unigram".
    family: str | None = None
    normalizer: str | None = None  # e.g. "NFC" (applied by encode; None: none)
    bos_token: str | None = None  # the model's BOS / EOS token text: never added by encode
    eos_token: str | None = None
    # The model's UNK / PAD token text, where the payload names them (a sentencepiece model: its unknown
    # piece and its PAD control piece); stated for readers of the manifest, taken from the payload.
    unk_token: str | None = None
    pad_token: str | None = None
    chat_template: str | None = None  # the model's own chat template (GGUF's tokenizer.chat_template), kept verbatim
    # How chats become prompt tokens for this version (None: encode_chat/count_chat refuse).
    chat_format: ChatFormatSpec | None = None

    def __post_init__(self) -> None:
        if check_int(self.format_version, "format_version") != MANIFEST_FORMAT_VERSION:
            raise FieldError(
                f"format_version: manifest format_version {self.format_version} is not supported (this tokend "
                f"reads version {MANIFEST_FORMAT_VERSION}); upgrade tokend or re-publish the model"
            )
        try:
            validate_model_name(self.name)
        except ValueError as error:
            raise FieldError(f"name: {error}") from None
        check_int(self.version, "version", minimum=1)
        check_choice(self.payload_format, "payload_format", get_args(PayloadFormat))
        _set(self, "payload", nested(PayloadFile, self.payload, "payload"))
        check_str(self.pattern, "pattern")
        check_int(self.n_vocab, "n_vocab", minimum=1)
        created_at = check_datetime(self.created_at, "created_at")
        _set(self, "created_at", created_at)
        _set(self, "provenance", nested(Provenance, self.provenance, "provenance"))

        def special_token(token: str, token_id: Any) -> None:
            if not token or isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
                raise ValueError(f"special token {token!r} -> {token_id!r}: tokens must be non-empty, ids integers >= 0")

        _set(self, "special_tokens", check_json_object(self.special_tokens, "special_tokens", check_item=special_token))
        check_int(self.explicit_n_vocab, "explicit_n_vocab", optional=True)
        check_str(self.description, "description")
        for name in _OPTIONAL_FIELDS[:-1]:
            check_str(getattr(self, name), name, optional=True)
        _set(self, "chat_format", nested(ChatFormatSpec, self.chat_format, "chat_format", optional=True))

    @classmethod
    def from_document(cls, document: Any, *, where: str = "") -> Manifest:
        """The manifest a JSON document describes (FieldError naming the field when it does not)."""
        required = ("format_version", "name", "version", "payload_format", "payload", "pattern", "n_vocab",
                    "created_at", "provenance")  # fmt: skip
        return from_document(cls, document, known=_field_names(cls), required=required, where=where)

    @property
    def tokenizer_family(self) -> str:
        return self.family or DEFAULT_FAMILY

    @property
    def ref(self) -> str:
        """The exact reference of this version, e.g. "cl100k_base@1"."""
        return f"{self.name}@{self.version}"

    def replace(self, **changes: Any) -> Manifest:
        """A copy with `changes`, checked like a new manifest (FieldError naming a bad field)."""
        return dataclasses.replace(self, **changes)

    def same_content(self, other: Manifest) -> bool:
        """True when both describe the same tokenizer (same ids for every input).

        Description, provenance and creation time are not content: republishing the same payload with a
        new description is idempotent and keeps the original manifest.
        """
        return (
            self.name == other.name
            and self.version == other.version
            and self.payload_format == other.payload_format
            and (self.payload.content_sha256 or self.payload.sha256)
            == (other.payload.content_sha256 or other.payload.sha256)
            and self.pattern == other.pattern
            and self.special_tokens == other.special_tokens
            and self.n_vocab == other.n_vocab
            and all(getattr(self, field) == getattr(other, field) for field in _OPTIONAL_FIELDS)
        )

    def to_document(self, *, every_field: bool = False) -> dict[str, Any]:
        """The manifest as JSON data, in the file's field order. Optional fields only when set (so a
        manifest that does not use them is written exactly as before they existed and readers that
        predate them still accept it), or all of them (`every_field`: for people, e.g. `registry show`)."""
        document = _document(self, omit_unset=() if every_field else _OPTIONAL_FIELDS)
        return {name: document[name] for name in _FILE_ORDER if name in document}

    def to_json_bytes(self) -> bytes:
        """The canonical file form: indented JSON, UTF-8, trailing newline."""
        return (json.dumps(self.to_document(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


# The order of the fields in the file (the dataclass puts the fields with defaults last).
_FILE_ORDER = (
    "format_version", "name", "version", "payload_format", "payload", "pattern", "special_tokens", "n_vocab",
    "explicit_n_vocab", "created_at", "description", "provenance", *_OPTIONAL_FIELDS,
)


def parse_manifest(data: bytes, *, what: str) -> Manifest:
    """Parse manifest bytes, raising `ModelFormatError` that names `what` (e.g. "cl100k_base@1").

    >>> parse_manifest(b"{}", what="x@1")
    Traceback (most recent call last):
    tokend.errors.ModelFormatError: manifest of x@1 is invalid: ...
    """
    try:
        text = data.decode("utf-8")  # strictly: json.loads(bytes) would also take UTF-16 and encoded surrogates
        document = json.loads(text)
    # ValueError: not UTF-8, not JSON, or a number of more than 4,300 digits; RecursionError: nested too deep.
    except (ValueError, RecursionError) as error:
        raise ModelFormatError(f"manifest of {what} is invalid: not UTF-8 JSON ({error})") from None
    try:
        if _SURROGATE_ESCAPE.search(text):
            _refuse_lone_surrogates(document)
        return Manifest.from_document(document)
    except FieldError as error:
        raise ModelFormatError(f"manifest of {what} is invalid: {error}") from None


# A \uD800-\uDFFF escape: JSON lets a string spell half of a surrogate pair on its own, which is no text
# (it cannot be written as UTF-8: a special token, pattern or template holding one fails where it is used).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(document: Any) -> None:
    """FieldError naming the top-level field whose strings (keys too) are not all valid Unicode."""
    for key, value in document.items() if isinstance(document, dict) else ():
        try:
            json.dumps({key: value}, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise FieldError(f"{key}: a string holds a lone surrogate (a \\uD800-\\uDFFF escape, unpaired)") from None
        except RecursionError:
            raise FieldError(f"{key}: nested too deep") from None


def build_manifest(**fields: Any) -> Manifest:
    """Construct a new Manifest; invalid values (a bad name, version 0, ...) raise `ModelFormatError`
    naming the field."""
    try:
        return Manifest.from_document(fields)
    except FieldError as error:
        what = f"{fields.get('name')}@{fields.get('version')}"
        raise ModelFormatError(f"cannot describe {what}: {error}") from None


def utc_now() -> datetime:
    """Creation timestamps are UTC, second precision (manifests are compared by humans)."""
    return datetime.now(timezone.utc).replace(microsecond=0)
