"""What the server says about its models, as plain frozen dataclasses (no protobuf types leak out).

    for model in client.list_models():
        print(model.name, model.versions, model.aliases)
    details = client.get_model("cl100k_base@stable")
    details.version, details.n_vocab, details.sha256
    details.chat_format.name if details.chat_format else None   # "openai-chat", "harmony", "template", ...
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from tokend_api.v1 import tokenizer_pb2 as pb


@dataclass(frozen=True)
class ModelSummary:
    """One model name: its published versions (ascending), the latest, and its aliases (alias → version)."""

    name: str
    versions: tuple[int, ...]
    latest_version: int
    aliases: Mapping[str, int]

    @classmethod
    def from_proto(cls, message: pb.ModelSummary) -> ModelSummary:
        return cls(
            name=message.name,
            versions=tuple(message.versions),
            latest_version=message.latest_version,
            aliases=MappingProxyType(dict(message.aliases)),
        )


@dataclass(frozen=True)
class ChatFormatDetails:
    """A model version's chat format (what `encode_chat` / `count_chat` use)."""

    name: str  # a built-in ("harmony", "mistral", "openai-chat", "chatml", "llama3", ...) or "template"
    kind: str  # "builtin" or "template" (a Jinja2 chat template from the registry)
    estimate: bool  # True: count_chat follows a documented rule (openai-chat); encode_chat has no ids
    description: str  # the name with its options, or "template (sha256 …)"

    @classmethod
    def from_proto(cls, message: pb.ChatFormatDetails) -> ChatFormatDetails:
        return cls(name=message.name, kind=message.kind, estimate=message.estimate, description=message.description)


@dataclass(frozen=True)
class ModelDetails:
    """One exact model version, as `GetModel` describes it."""

    name: str
    version: int
    n_vocab: int
    max_token_value: int
    special_tokens: Mapping[str, int]  # special token -> id
    pattern: str  # the pre-split regex (Python `regex` syntax)
    payload_format: str  # "tiktoken", "minbpe", "huggingface" (tokenizer.json), "tekken" or "sentencepiece"
    sha256: str  # of the manifest, which holds the payload checksums
    description: str
    created_at: str  # RFC 3339
    aliases: tuple[str, ...]  # aliases pointing at this version now
    eot_token: int | None
    # How it tokenizes: "byte_level_bpe", "sentencepiece-bpe" or "sentencepiece-unigram" ("" from an older server).
    algorithm: str = ""
    # What encode applies first ("NFC", "identity", "nmt_nfkc", ...); None: no normalizer (or an older server).
    normalizer: str | None = None
    # The tokens the model names for these roles, as (text, id); None where it names none.
    bos_token: tuple[str, int] | None = None
    eos_token: tuple[str, int] | None = None
    unk_token: tuple[str, int] | None = None
    pad_token: tuple[str, int] | None = None
    chat_format: ChatFormatDetails | None = None  # None: the version has no chat format

    @property
    def ref(self) -> str:
        """The exact reference, `"name@version"`: it always means this content."""
        return f"{self.name}@{self.version}"

    @classmethod
    def from_proto(cls, message: pb.ModelDetails) -> ModelDetails:
        return cls(
            name=message.model.name,
            version=message.model.version,
            n_vocab=message.n_vocab,
            max_token_value=message.max_token_value,
            special_tokens=MappingProxyType(dict(message.special_tokens)),
            pattern=message.pattern,
            payload_format=message.payload_format,
            sha256=message.sha256,
            description=message.description,
            created_at=message.created_at,
            aliases=tuple(message.aliases),
            eot_token=message.eot_token if message.HasField("eot_token") else None,
            algorithm=message.algorithm,
            normalizer=message.normalizer or None,
            **{role: _role_token(message, role) for role in ("bos_token", "eos_token", "unk_token", "pad_token")},
            chat_format=ChatFormatDetails.from_proto(message.chat_format) if message.HasField("chat_format") else None,
        )


def _role_token(message: pb.ModelDetails, role: str) -> tuple[str, int] | None:
    if not message.HasField(role):
        return None
    token = getattr(message, role)
    return token.text, token.id
