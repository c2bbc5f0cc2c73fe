"""The model registry: versioned, checksummed BPE models — resolve, load, publish, alias, hot reload.

Public names (see `registry.py` for the main class and docs/registry.md for the on-disk layout):

    Registry, get_encoding, default_registry, list_encoding_names
    Manifest, PayloadFile, Provenance, MANIFEST_FORMAT_VERSION
    ModelVersionRef, ModelSummary, LoadedModel, RefreshReport, AliasMove, VerificationResult
    DirectorySource, HttpSource, NewVersion, describe_payload
    ChatFormatSpec, ChatEncoding, ChatCount, TemplateLimits, builtin_chat_format, chat_format_from_template,
    chat_format_from_tokenizer_config (chat formats: see registry/chat/)

Errors come from `tokend.errors` (ModelNotFoundError, VersionConflictError, RegistryError,
ChecksumMismatchError, ModelFormatError).

`HttpSource` is imported on first use (it brings http.client and ssl, which a process that only reads the
embedded registry never needs: part of `get_encoding`'s cold start).
"""

from typing import TYPE_CHECKING, Any

from tokend.registry.catalog import ModelSummary
from tokend.registry.chat.spec import (
    ChatFormatSpec,
    builtin_chat_format,
    chat_format_from_template,
    chat_format_from_tokenizer_config,
)
from tokend.registry.default_registry import default_registry, get_encoding, list_encoding_names
from tokend.registry.directory_source import DirectorySource
from tokend.registry.manifest import MANIFEST_FORMAT_VERSION, Manifest, PayloadFile, Provenance
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import NewVersion, describe_payload
from tokend.registry.registry import Registry
from tokend.registry.reports import AliasMove, LoadedModel, RefreshReport, VerificationResult

if TYPE_CHECKING:
    from tokend.registry.chat import ChatCount, ChatEncoding, TemplateLimits
    from tokend.registry.http_source import HttpSource

# Imported on first use: HttpSource brings http.client and ssl; the chat result types bring the renderers.
_LAZY = {
    "HttpSource": "tokend.registry.http_source", "ChatCount": "tokend.registry.chat.segments",
    "ChatEncoding": "tokend.registry.chat.segments", "TemplateLimits": "tokend.registry.chat.template_limits",
}  # fmt: skip

__all__ = [
    "AliasMove",
    "ChatCount",
    "ChatEncoding",
    "ChatFormatSpec",
    "DirectorySource",
    "HttpSource",
    "LoadedModel",
    "MANIFEST_FORMAT_VERSION",
    "Manifest",
    "ModelSummary",
    "ModelVersionRef",
    "NewVersion",
    "PayloadFile",
    "Provenance",
    "RefreshReport",
    "TemplateLimits",
    "Registry",
    "VerificationResult",
    "builtin_chat_format",
    "chat_format_from_template",
    "chat_format_from_tokenizer_config",
    "default_registry",
    "describe_payload",
    "get_encoding",
    "list_encoding_names",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tokend.registry' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value
