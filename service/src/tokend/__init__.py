"""tokend: an exact, fast byte-level BPE tokenizer (tiktoken-compatible ids), a versioned model registry
and a gRPC service.

>>> import tokend
>>> enc = tokend.get_encoding("cl100k_base")
>>> enc.encode("hello world")
[15339, 1917]

This module only re-exports public names. `Registry` and `get_encoding` live in `tokend.registry` and are
imported on first use, so `import tokend` stays cheap and works without loading the registry layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import (
    CL100K_BASE,
    GPT2_PATTERN,
    GPT4_PATTERN,
    O200K_BASE,
    O200K_PATTERN,
    PATTERNS,
    Chunk,
    Encoding,
    MinbpeModel,
    PieceCacheStats,
    StreamDecoder,
    TokenOffsets,
    TrainingResult,
    Truncation,
    dump_minbpe_model,
    dump_tiktoken_ranks,
    load_minbpe_model,
    load_tiktoken_ranks,
    merges_to_ranks,
    ranks_to_merges,
    train,
)
from .errors import (
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    InvalidBudgetError,
    ModelFormatError,
    ModelLoadingError,
    ModelNotFoundError,
    OffsetsUnavailableError,
    RegistryError,
    TokendError,
    UnknownTokenIdError,
    VersionConflictError,
)

if TYPE_CHECKING:
    from .registry import Registry, get_encoding

__version__ = "0.1.0"

_LAZY = {"Registry": "tokend.registry", "get_encoding": "tokend.registry"}

__all__ = [
    "Encoding",
    "PieceCacheStats",
    "TokenOffsets",
    "Truncation",
    "Chunk",
    "StreamDecoder",
    "train",
    "TrainingResult",
    "get_encoding",
    "Registry",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "O200K_PATTERN",
    "PATTERNS",
    "CL100K_BASE",
    "O200K_BASE",
    "MinbpeModel",
    "load_minbpe_model",
    "dump_minbpe_model",
    "load_tiktoken_ranks",
    "dump_tiktoken_ranks",
    "merges_to_ranks",
    "ranks_to_merges",
    "TokendError",
    "DisallowedSpecialTokenError",
    "UnknownTokenIdError",
    "ModelFormatError",
    "ChecksumMismatchError",
    "InvalidBudgetError",
    "OffsetsUnavailableError",
    "ModelNotFoundError",
    "VersionConflictError",
    "RegistryError",
    "ModelLoadingError",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tokend' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
