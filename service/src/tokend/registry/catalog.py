"""The catalog: what a registry source holds right now (names, versions, aliases), and its index file.

A catalog is an immutable snapshot; `Registry.refresh()` swaps in a new one atomically, so a lookup
never sees half an update. The same data, serialised, is the registry's `index.json`: a directory
registry keeps it current on every publish and alias move, so the directory can be served as-is by any
static file server and read back by the HTTP source (which cannot list directories).

    {"format_version": 1,
     "models": {"cl100k_base": {"versions": {"1": {"manifest_sha256": "…"}},
                                "aliases": {"stable": 1}}}}

Not handled here: reading or writing files (the sources do that).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from tokend.errors import ModelFormatError
from tokend.registry.manifest import validate_model_name
from tokend.registry.model_ref import parse_version, validate_alias

INDEX_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelSummary:
    """One model name as `Registry.list_models()` reports it."""

    name: str
    versions: tuple[int, ...]  # ascending
    latest_version: int
    aliases: Mapping[str, int]  # alias -> version


@dataclass(frozen=True)
class CatalogEntry:
    """Versions and aliases of one name. `manifest_sha256` is known for HTTP sources (from the index)."""

    versions: Mapping[int, str | None]  # version -> manifest SHA-256 (None: not recorded)
    aliases: Mapping[str, int] = field(default_factory=dict)  # alias -> version

    @property
    def latest_version(self) -> int:
        return max(self.versions)


@dataclass(frozen=True)
class Catalog:
    """An immutable snapshot of a source: name -> CatalogEntry (only names with at least one version)."""

    entries: Mapping[str, CatalogEntry]

    @classmethod
    def build(cls, entries: dict[str, CatalogEntry]) -> Catalog:
        kept = {name: entry for name, entry in sorted(entries.items()) if entry.versions}
        return cls(MappingProxyType(kept))

    def summaries(self) -> list[ModelSummary]:
        return [
            ModelSummary(
                name=name,
                versions=tuple(sorted(entry.versions)),
                latest_version=entry.latest_version,
                aliases=MappingProxyType(dict(sorted(entry.aliases.items()))),
            )
            for name, entry in self.entries.items()
        ]

    def available_refs(self, name: str | None = None) -> list[str]:
        """What exists, for error messages: all names, or every `name@version` / `name@alias` of one name."""
        if name is None or name not in self.entries:
            return list(self.entries)
        entry = self.entries[name]
        return [f"{name}@{version}" for version in sorted(entry.versions)] + [
            f"{name}@{alias}" for alias in sorted(entry.aliases)
        ]

    def to_index_bytes(self) -> bytes:
        """Serialise as `index.json` (stable key order, so unchanged content gives unchanged bytes)."""
        document = {
            "format_version": INDEX_FORMAT_VERSION,
            "models": {
                name: {
                    "versions": {
                        str(version): {"manifest_sha256": digest}
                        for version, digest in sorted(entry.versions.items())
                    },
                    "aliases": dict(sorted(entry.aliases.items())),
                }
                for name, entry in self.entries.items()
            },
        }
        return (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8")

    @classmethod
    def from_index_bytes(cls, data: bytes, *, where: str) -> Catalog:
        """Parse `index.json`; raise `ModelFormatError` naming `where` when it is not a valid index."""
        try:
            document = json.loads(data)
            if not isinstance(document, dict):
                raise ValueError("the top level must be a JSON object")
            if document.get("format_version") != INDEX_FORMAT_VERSION:
                raise ValueError(
                    f"format_version {document.get('format_version')!r} is not supported "
                    f"(this tokend reads {INDEX_FORMAT_VERSION})"
                )
            entries: dict[str, CatalogEntry] = {}
            for name, model in dict(document["models"]).items():
                validate_model_name(name)
                versions = {
                    parse_version(str(version)): info.get("manifest_sha256")
                    for version, info in dict(model.get("versions", {})).items()
                }
                aliases = {validate_alias(alias): int(version) for alias, version in dict(model.get("aliases", {})).items()}
                entries[name] = CatalogEntry(MappingProxyType(versions), MappingProxyType(aliases))
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelFormatError(f"registry index {where} is invalid: {error}") from None
        return cls.build(entries)
