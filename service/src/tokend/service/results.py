"""What the service's operations return: plain values, each naming the exact model version that answered.

    Encoded(model=ModelVersion("cl100k_base", 1), ids=[[15339, 1917]], total_tokens=2)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from tokend.registry.chat import ChatCount, ChatEncoding

__all__ = [
    "ModelVersion",
    "Encoded",
    "Counted",
    "Decoded",
    "ModelInfo",
    "ModelDetails",
    "ChatFormatDetails",
    "ChatEncoded",
    "ChatCounted",
]


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int


@dataclass(frozen=True)
class Encoded:
    model: ModelVersion
    ids: list[list[int]]  # one list per input, in order (with encode(packed=True), some may be uint32 memoryviews)
    total_tokens: int


@dataclass(frozen=True)
class Counted:
    model: ModelVersion
    counts: list[int]  # one per input, in order
    total: int


@dataclass(frozen=True)
class Decoded:
    model: ModelVersion
    results: list[str] | list[bytes]  # text (output "text") or bytes (output "bytes"), one per input


@dataclass(frozen=True)
class ModelInfo:
    """One model of the registry: its versions (ascending), the latest, and its aliases (alias → version)."""

    name: str
    versions: Sequence[int]
    latest_version: int
    aliases: Mapping[str, int]


@dataclass(frozen=True)
class ModelDetails:
    """One exact model version."""

    model: ModelVersion
    n_vocab: int
    max_token_value: int
    special_tokens: Mapping[str, int]
    pattern: str
    payload_format: str  # "tiktoken", "minbpe", ...
    sha256: str  # of the manifest, which holds the payload's SHA-256
    description: str = ""
    created_at: datetime | None = None
    aliases: list[str] = field(default_factory=list)  # aliases pointing at this version now
    eot_token: int | None = None
    chat_format: ChatFormatDetails | None = None  # None: the version has no chat format (chats are refused)
    # How it tokenizes (the manifest's family): "byte_level_bpe", "sentencepiece-bpe", "sentencepiece-unigram".
    algorithm: str = "byte_level_bpe"
    normalizer: str | None = None  # what encode applies first ("NFC", "nmt_nfkc", "identity", ...); None: none
    # role ("bos", "eos", "unk", "pad") -> (token text, id), for the roles the model names
    role_tokens: Mapping[str, tuple[str, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatFormatDetails:
    """A model version's chat format, as GetModel reports it."""

    name: str  # a built-in's name (harmony, mistral, openai-chat, chatml, llama3, ...) or "template"
    kind: str  # "builtin" or "template"
    estimate: bool  # count_chat follows a documented rule (openai-chat); encode_chat has no ids
    description: str  # the name with its options, or "template (sha256 …)"


@dataclass(frozen=True)
class ChatEncoded:
    """``encode_chat``: one ``ChatEncoding(ids, text, message_spans, spans_exact)`` per conversation."""

    model: ModelVersion
    results: list[ChatEncoding]
    total_tokens: int


@dataclass(frozen=True)
class ChatCounted:
    """``count_chat``: one ``ChatCount(total, per_message, spans_exact, estimate)`` per conversation."""

    model: ModelVersion
    results: list[ChatCount]
    total: int
