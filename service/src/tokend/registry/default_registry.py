"""The embedded default registry and `tokend.get_encoding`, the drop-in for `tiktoken.get_encoding`.

    >>> import tokend
    >>> enc = tokend.get_encoding("cl100k_base")   # loaded once per process, then cached
    >>> enc.encode("hello world")
    [15339, 1917]

The embedded registry (`tokend/registry/default/`, package data) holds cl100k_base@1 and o200k_base@1
(OpenAI's rank files, verified against tiktoken's published SHA-256) and alice_2k@1, trained by
`tokend train` on Alice's Adventures in Wonderland (see docs/registry.md). It is read-only.
"""

from __future__ import annotations

import threading

from tokend.engine import Encoding
from tokend.registry.registry import Registry

_lock = threading.Lock()
_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide embedded registry (created on first use, thread-safe)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = Registry.open(None)
    return _default


def get_encoding(name: str) -> Encoding:
    """The Encoding for `name` (`"cl100k_base"`, `"o200k_base@1"`, …) from the embedded registry.

    Raises `ModelNotFoundError` (a ValueError, like tiktoken's) listing the models that exist.
    """
    return default_registry().get_encoding(name)


def list_encoding_names() -> list[str]:
    """Names in the embedded registry, like `tiktoken.list_encoding_names()`."""
    return [summary.name for summary in default_registry().list_models()]
