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
"""

from tokend.registry.catalog import ModelSummary
from tokend.registry.chat import (
    ChatCount,
    ChatEncoding,
    ChatFormatSpec,
    TemplateLimits,
    builtin_chat_format,
    chat_format_from_template,
    chat_format_from_tokenizer_config,
)
from tokend.registry.default_registry import default_registry, get_encoding, list_encoding_names
from tokend.registry.directory_source import DirectorySource
from tokend.registry.http_source import HttpSource
from tokend.registry.manifest import MANIFEST_FORMAT_VERSION, Manifest, PayloadFile, Provenance
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import NewVersion, describe_payload
from tokend.registry.registry import Registry
from tokend.registry.reports import AliasMove, LoadedModel, RefreshReport, VerificationResult

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
