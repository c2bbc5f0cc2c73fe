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
    >>> manifest = Manifest.model_validate_json(path.read_bytes())
    >>> manifest.ref, manifest.payload_format, manifest.payload.path, manifest.n_vocab
    ('cl100k_base@1', 'tiktoken_ranks', 'ranks.tiktoken.gz', 100277)
    >>> manifest.payload.content_sha256          # tiktoken's published hash of cl100k_base.tiktoken
    '223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7'

Loaders refuse a manifest whose `format_version` they do not know (`ModelFormatError`), so a future layout
can never be half-understood. Not handled here: reading files or checking hashes (see `payload`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tokend.errors import ModelFormatError
from tokend.registry.chat.spec import ChatFormatSpec

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

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Names end up as directory names and in `name@ref` strings: keep them portable and unambiguous.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_PAYLOAD_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def validate_model_name(name: str) -> str:
    """Return `name` if it can name a model, else raise ValueError saying what is allowed."""
    if not isinstance(name, str) or not _NAME.match(name) or name.endswith((".tmp", ".partial")):
        raise ValueError(
            f"invalid model name {name!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no '@' or '/')"
        )
    return name


class PayloadFile(BaseModel):
    """The payload file of a version: where it is and what its bytes hash to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # file name inside the version directory, e.g. "ranks.tiktoken.gz"
    size: int = Field(ge=0)  # bytes as stored
    sha256: str  # of the bytes as stored
    compression: Compression = "none"
    # SHA-256 of the decompressed content; for OpenAI's rank files this is tiktoken's published hash.
    content_sha256: str | None = None
    # Bytes of the decompressed content: inflating stops one byte past it (absent in older manifests:
    # then only the global cap, size_limits.MAX_PAYLOAD_BYTES, bounds it).
    content_size: int | None = Field(default=None, ge=0)
    # "name@version" of the version of this registry whose directory holds the file (None: this one's).
    shared_with: str | None = None

    @field_validator("path")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if not _PAYLOAD_FILE.match(value) or value == "manifest.json":
            raise ValueError(f"payload path {value!r} must be a plain file name inside the version directory")
        return value

    @field_validator("shared_with")
    @classmethod
    def _version_ref(cls, value: str | None) -> str | None:
        if value is not None:
            name, _, version = value.partition("@")
            validate_model_name(name)
            if not version.isdigit() or version.startswith("0"):
                raise ValueError(f"shared_with {value!r} must name an exact version, e.g. o200k_base@1")
        return value

    def owner(self, name: str, version: int) -> tuple[str, int]:
        """(name, version) of the directory that holds the file, for the version `name@version`."""
        if self.shared_with is None:
            return name, version
        owner_name, _, owner_version = self.shared_with.partition("@")
        return owner_name, int(owner_version)

    @field_validator("sha256", "content_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is not None and not _SHA256.match(value):
            raise ValueError(f"{value!r} is not a lowercase hex SHA-256 digest")
        return value


class Provenance(BaseModel):
    """Where the payload came from. `kind` is "imported" or "trained"; the rest depends on it.

    imported: `source` (file name), `source_sha256`, `source_url` (if known).
    trained:  `inputs` ([{"path", "sha256", "size"}]), `settings` (vocab size, pattern, special tokens),
              `command` (the exact command line that reproduces it).
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: Literal["imported", "trained"]
    command: str | None = None
    tool: str | None = None  # e.g. "tokend 0.1.0"
    source: str | None = None
    source_sha256: str | None = None
    source_url: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    settings: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    """Everything needed to turn a payload into an `Encoding`, plus where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format_version: int
    name: str
    version: int = Field(ge=1)
    payload_format: PayloadFormat
    payload: PayloadFile
    pattern: str  # the pre-split regex
    special_tokens: dict[str, int] = Field(default_factory=dict)  # token text -> id
    n_vocab: int = Field(ge=1)  # max token id + 1, as tiktoken's Encoding.n_vocab
    # Passed to Encoding(explicit_n_vocab=...) when set: the loader then checks the vocabulary size.
    explicit_n_vocab: int | None = None
    created_at: datetime
    description: str = ""
    provenance: Provenance
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

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != MANIFEST_FORMAT_VERSION:
            raise ValueError(
                f"manifest format_version {value} is not supported (this tokend reads version "
                f"{MANIFEST_FORMAT_VERSION}); upgrade tokend or re-publish the model"
            )
        return value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return validate_model_name(value)

    @field_validator("special_tokens")
    @classmethod
    def _non_negative_ids(cls, value: dict[str, int]) -> dict[str, int]:
        for token, token_id in value.items():
            if not token or token_id < 0:
                raise ValueError(f"special token {token!r} -> {token_id}: tokens must be non-empty, ids >= 0")
        return value

    @property
    def tokenizer_family(self) -> str:
        return self.family or DEFAULT_FAMILY

    @property
    def ref(self) -> str:
        """The exact reference of this version, e.g. "cl100k_base@1"."""
        return f"{self.name}@{self.version}"

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

    def to_json_bytes(self) -> bytes:
        """The canonical file form: indented JSON, UTF-8, trailing newline."""
        # Optional fields are written only when set, so a manifest that does not use them is written
        # exactly as before they existed and readers that predate them still accept it.
        exclude: dict = {field: True for field in _OPTIONAL_FIELDS if getattr(self, field) is None}
        payload_exclude = {field for field in _OPTIONAL_PAYLOAD_FIELDS if getattr(self.payload, field) is None}
        if payload_exclude:
            exclude["payload"] = payload_exclude
        return (self.model_dump_json(indent=2, exclude=exclude) + "\n").encode("utf-8")


def parse_manifest(data: bytes, *, what: str) -> Manifest:
    """Parse manifest bytes, raising `ModelFormatError` that names `what` (e.g. "cl100k_base@1").

    >>> parse_manifest(b"{}", what="x@1")
    Traceback (most recent call last):
    tokend.errors.ModelFormatError: manifest of x@1 is invalid: ...
    """
    try:
        return Manifest.model_validate_json(data)
    except ValidationError as error:
        raise ModelFormatError(f"manifest of {what} is invalid: {_details(error)}") from None


def build_manifest(**fields: Any) -> Manifest:
    """Construct a new Manifest; invalid values (a bad name, version 0, ...) raise `ModelFormatError`
    naming the field, instead of pydantic's ValidationError."""
    try:
        return Manifest(**fields)
    except ValidationError as error:
        what = f"{fields.get('name')}@{fields.get('version')}"
        raise ModelFormatError(f"cannot describe {what}: {_details(error)}") from None


def _details(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or '<root>'}: {item['msg']}" for item in error.errors()
    )


def utc_now() -> datetime:
    """Creation timestamps are UTC, second precision (manifests are compared by humans)."""
    return datetime.now(timezone.utc).replace(microsecond=0)
