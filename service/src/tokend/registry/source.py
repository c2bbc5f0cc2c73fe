"""What every registry source provides: a catalog, manifest bytes and payload bytes of one version.

Sources: `DirectorySource` (a local directory, writable unless opened read-only; the embedded default
registry is one, read-only) and `HttpSource` (a read-only HTTP(S) registry fetched into a local cache).
The `Registry` on top parses, verifies, caches and resolves; a source only moves bytes and knows its
layout.

Bounds every source keeps (see size_limits): a manifest is read up to MAX_MANIFEST_BYTES + 1 bytes, a payload
up to `payload.stored_read_limit(manifest) + 1` (its manifest size, capped), so an oversized file is refused
after reading one byte too many, never whole. `deadline` (a `time.monotonic()` value) ends a slow read with
RegistryError; local files are bounded by their size alone.

Not handled here: checksum policy (the registry verifies everything a source returns).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from tokend.errors import RegistryError
from tokend.registry.catalog import Catalog
from tokend.registry.manifest import Manifest
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import NewVersion


class Source(ABC):
    """A place models are read from (and, for writable sources, published to)."""

    location: str
    writable: bool = False

    @abstractmethod
    def scan(self) -> Catalog:
        """Read the current names, versions and aliases. Raises RegistryError if the source is unusable."""

    @abstractmethod
    def read_manifest(self, ref: ModelVersionRef, *, deadline: float | None = None) -> bytes:
        """The stored manifest bytes of one version (RegistryError if missing, unreadable or too slow)."""

    @abstractmethod
    def read_payload(self, manifest: Manifest, *, deadline: float | None = None) -> bytes:
        """The stored payload bytes of one version, exactly as the manifest's checksum covers them; at most
        `stored_read_limit(manifest) + 1` bytes (more than the manifest's size: the caller refuses it)."""

    def expected_manifest_sha256(self, ref: ModelVersionRef) -> str | None:
        """The manifest digest the source's index records for `ref` (None: no index entry to check).
        Raises ModelFormatError when the index exists but cannot be used: the check must not silently lapse."""
        return None

    def publish(self, new: NewVersion) -> Manifest:
        raise self.read_only_error("publish")

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        raise self.read_only_error("set aliases")

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        return []

    def read_only_error(self, action: str) -> RegistryError:
        """The error for ``action`` (e.g. "publish") on a source that cannot be written."""
        return RegistryError(
            f"cannot {action}: {self.location} is read-only; use a local directory registry "
            "(--registry DIR) instead"
        )
