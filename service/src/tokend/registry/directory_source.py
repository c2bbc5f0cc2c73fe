"""A registry in a local directory: one directory per name and version, published atomically.

Layout (documented for operators in docs/registry.md):

    ROOT/
      index.json                 catalog for HTTP serving; rewritten (atomically) on every change
      .staging/                  lock file and temporary version directories (same file system)
      NAME/
        aliases.json             {"format_version": 1, "aliases": {"stable": 2}, "history": [...moves...]}
        VERSION/                 "1", "2", ... (positive integers, no leading zeros)
          manifest.json
          ranks.tiktoken[.gz] | merges.model[.gz] | tokenizer.json[.gz] | tekken.json[.gz]
                                 (none when the manifest shares another version's payload file)

Publishing writes a complete version directory under `.staging/` and renames it to `NAME/VERSION`.
`rename(2)` of a directory onto an existing non-empty one fails, so of two concurrent publishers of the
same version (threads or processes) exactly one wins; readers only ever see complete versions. The
loser compares contents: identical is success (idempotent), different is `VersionConflictError`.
Alias moves and the index are read-modify-write updates done under an exclusive `flock`.

    source = DirectorySource(Path("models"))
    source.publish(new_version)     # a NewVersion (payload.describe_payload) -> the stored Manifest;
                                    # models/NAME/VERSION/ appears complete, or not at all

Not handled: deleting versions (do it by hand; a running registry notices on refresh), network file
systems without atomic rename/flock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tokend.errors import ModelFormatError, ModelNotFoundError, RegistryError, VersionConflictError
from tokend.registry.atomic_files import STAGING_DIR, registry_lock, sha256_hex, write_atomic
from tokend.registry.catalog import Catalog, CatalogEntry
from tokend.registry.manifest import Manifest, parse_manifest, utc_now, validate_model_name
from tokend.registry.model_ref import ModelVersionRef, parse_version, validate_alias
from tokend.registry.payload import NewVersion, stored_read_limit
from tokend.registry.size_limits import MAX_INDEX_BYTES, MAX_MANIFEST_BYTES, read_file_at_most
from tokend.registry.source import Source

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
ALIASES_FILE = "aliases.json"
INDEX_FILE = "index.json"
ALIASES_FORMAT_VERSION = 1


class DirectorySource(Source):
    """Models under `root`; `writable=False` refuses publish and alias moves (the embedded registry)."""

    def __init__(self, root: Path | str, *, writable: bool = True, label: str | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.location = label or str(self.root)  # for messages and logs
        self.writable = writable
        if not self.root.is_dir():
            raise RegistryError(
                f"registry directory {self.root} does not exist; create it (mkdir) or publish into it with "
                "`tokend registry import ... --registry DIR`, which creates it"
            )

    @classmethod
    def create(cls, root: Path | str) -> DirectorySource:
        """Open `root`, creating it (and parents) first if needed."""
        Path(root).expanduser().mkdir(parents=True, exist_ok=True)
        return cls(root)

    # --- reading -----------------------------------------------------------------------------------

    def scan(self) -> Catalog:
        return self._scan(with_digests=False)

    def _scan(self, *, with_digests: bool) -> Catalog:
        entries: dict[str, CatalogEntry] = {}
        try:
            children = sorted(self.root.iterdir())
        except OSError as error:
            raise RegistryError(f"cannot read registry directory {self.root}: {error}") from None
        for model_dir in children:
            if model_dir.name.startswith(".") or not model_dir.is_dir():
                continue
            try:
                validate_model_name(model_dir.name)
            except ValueError:
                logger.warning("ignoring %s: not a valid model name", model_dir)
                continue
            versions: dict[int, str | None] = {}
            for version_dir in model_dir.iterdir():
                try:
                    version = parse_version(version_dir.name)
                except ValueError:
                    continue  # aliases.json and anything else that is not a version
                manifest_path = version_dir / MANIFEST_FILE
                if not manifest_path.is_file():
                    continue  # an incomplete directory left by hand; publish never creates one
                versions[version] = sha256_hex(manifest_path.read_bytes()) if with_digests else None
            aliases = {
                alias: version for alias, version in self._read_aliases(model_dir.name)["aliases"].items()
                if version in versions
            }
            entries[model_dir.name] = CatalogEntry(MappingProxyType(versions), MappingProxyType(aliases))
        return Catalog.build(entries)

    def read_manifest(self, ref: ModelVersionRef, *, deadline: float | None = None) -> bytes:
        path = self.root / ref.name / str(ref.version) / MANIFEST_FILE
        try:
            data = read_file_at_most(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise RegistryError(f"{ref} has no manifest at {path}: the version was removed or is incomplete") from None
        except OSError as error:
            raise RegistryError(f"cannot read the manifest of {ref} at {path}: {error}") from None
        if len(data) > MAX_MANIFEST_BYTES:
            raise ModelFormatError(f"the manifest of {ref} at {path} is larger than {MAX_MANIFEST_BYTES:,} bytes; refusing it")
        return data

    def expected_manifest_sha256(self, ref: ModelVersionRef) -> str | None:
        """What index.json recorded when `ref` was published, so a manifest edited in place is caught.

        No index at all (a directory assembled by hand) gives None: the payload checks still apply. An index
        that exists but does not parse raises ModelFormatError: treating it as absent would switch the
        manifest check off without a word (a manifest with swapped special-token ids would then be served)."""
        path = self.root / INDEX_FILE
        try:
            data = read_file_at_most(path, MAX_INDEX_BYTES)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise RegistryError(f"cannot read the registry index {path}: {error}") from None
        try:
            if len(data) > MAX_INDEX_BYTES:
                raise ModelFormatError(f"registry index {path} is larger than {MAX_INDEX_BYTES:,} bytes")
            catalog = Catalog.from_index_bytes(data, where=str(path))
        except ModelFormatError as error:
            raise ModelFormatError(
                f"{error}; without it the manifest of {ref} cannot be checked, so versions not yet loaded are "
                f"refused: check the manifests, then rebuild it with `tokend registry index --registry {self.root}`"
            ) from None
        entry = catalog.entries.get(ref.name)
        return entry.versions.get(ref.version) if entry is not None else None

    def read_payload(self, manifest: Manifest, *, deadline: float | None = None) -> bytes:
        owner_name, owner_version = manifest.payload.owner(manifest.name, manifest.version)
        path = self.root / owner_name / str(owner_version) / manifest.payload.path
        try:
            return read_file_at_most(path, stored_read_limit(manifest))
        except OSError as error:
            raise RegistryError(f"cannot read the payload of {manifest.ref} at {path}: {error}") from None

    def _read_aliases(self, name: str) -> dict[str, Any]:
        path = self.root / name / ALIASES_FILE
        try:
            document = json.loads(path.read_bytes())
            if document.get("format_version") != ALIASES_FORMAT_VERSION:
                raise ValueError(f"unsupported format_version {document.get('format_version')!r}")
            aliases = {validate_alias(alias): int(version) for alias, version in document["aliases"].items()}
            return {"aliases": aliases, "history": list(document.get("history", []))}
        except FileNotFoundError:
            return {"aliases": {}, "history": []}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            # One broken alias file must not hide the model's versions; the problem is logged.
            logger.warning("ignoring aliases of %s: %s is invalid (%s)", name, path, error)
            return {"aliases": {}, "history": []}

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        return self._read_aliases(validate_model_name(name))["history"]

    # --- writing -----------------------------------------------------------------------------------

    def publish(self, new: NewVersion) -> Manifest:
        """Publish one version atomically; idempotent for identical content (returns the stored manifest)."""
        if not self.writable:
            raise self.read_only_error("publish")
        manifest = new.manifest
        manifest_bytes = manifest.to_json_bytes()
        if len(manifest_bytes) > MAX_MANIFEST_BYTES:
            # Every reader refuses it (directory and HTTP alike): published, it would be a version no server loads.
            raise ModelFormatError(
                f"the manifest of {manifest.name}@{manifest.version} would be {len(manifest_bytes):,} bytes, over the "
                f"{MAX_MANIFEST_BYTES:,} a registry reads ({len(manifest.special_tokens):,} special tokens); not published"
            )
        target = self.root / manifest.name / str(manifest.version)
        existing = self._existing(target, manifest)
        if existing is not None:
            return existing
        staging_root = self.root / STAGING_DIR
        staging_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{manifest.name}@{manifest.version}.", dir=staging_root))
        try:
            if manifest.payload.shared_with is None:
                self._write_file(staging / manifest.payload.path, new.stored)
            else:
                self._check_shared_payload(manifest)
            self._write_file(staging / MANIFEST_FILE, manifest_bytes)
            os.chmod(staging, 0o755)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, target)
            except OSError as error:
                if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                # Someone else published this version between our check and our rename.
                existing = self._existing(target, manifest)
                if existing is None:
                    raise RegistryError(f"{target} exists but holds no manifest; remove it and publish again") from None
                return existing
            self._fsync_directory(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.write_index()
        logger.info("published %s into %s", manifest.ref, self.root)
        return manifest

    def _check_shared_payload(self, manifest: Manifest) -> None:
        """The file a sharing manifest refers to must be there and be what the manifest says."""
        try:
            stored = self.read_payload(manifest)
        except RegistryError as error:
            raise RegistryError(f"{manifest.ref} shares the payload of {manifest.payload.shared_with}: {error}") from None
        if sha256_hex(stored) != manifest.payload.sha256:
            raise RegistryError(
                f"{manifest.ref} shares the payload of {manifest.payload.shared_with}, whose file no longer has the "
                f"SHA-256 {manifest.payload.sha256}"
            )

    def _existing(self, target: Path, manifest: Manifest) -> Manifest | None:
        """The manifest already at `target` if its content equals `manifest`'s; conflict if it differs."""
        path = target / MANIFEST_FILE
        if not path.exists():
            return None
        try:
            stored = parse_manifest(path.read_bytes(), what=manifest.ref)
        except ModelFormatError as error:
            raise VersionConflictError(
                f"{manifest.ref} is already published in {self.root} but its manifest does not parse ({error}); "
                "published versions are never overwritten: publish under a new version"
            ) from None
        if not stored.same_content(manifest):
            raise VersionConflictError(
                f"{manifest.ref} is already published in {self.root} with different content (payload sha256 "
                f"{stored.payload.sha256}); published versions are immutable: publish under a new version, "
                f"e.g. {manifest.name}@{self._next_version(manifest.name)}"
            )
        return stored

    def _next_version(self, name: str) -> int:
        entry = self.scan().entries.get(name)
        return entry.latest_version + 1 if entry else 1

    def next_version(self, name: str) -> int:
        """The version a new publish of `name` would get (highest + 1, or 1)."""
        return self._next_version(validate_model_name(name))

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point `name@alias` at `version` (which must exist); record the move. Returns the previous version."""
        if not self.writable:
            raise self.read_only_error("set aliases")
        validate_model_name(name)
        validate_alias(alias)
        with registry_lock(self.root):
            entry = self.scan().entries.get(name)
            if entry is None or version not in entry.versions:
                available = [f"{name}@{v}" for v in sorted(entry.versions)] if entry else sorted(self.scan().entries)
                raise ModelNotFoundError(
                    f"{name}@{version}",
                    available,
                    f"cannot point {name}@{alias} at {name}@{version}: no such version; available: "
                    f"{', '.join(available) or 'none'}",
                )
            document = self._read_aliases(name)
            previous = document["aliases"].get(alias)
            if previous != version:
                document["aliases"][alias] = version
                document["history"].append(
                    {"alias": alias, "from": previous, "to": version, "at": utc_now().isoformat()}
                )
                payload = {"format_version": ALIASES_FORMAT_VERSION, **document}
                write_atomic(self.root / name / ALIASES_FILE, (json.dumps(payload, indent=2) + "\n").encode())
                self._write_index_locked()
        return previous

    def write_index(self) -> Path:
        """Rewrite ROOT/index.json from the directory contents (what HTTP readers of this directory use)."""
        with registry_lock(self.root):
            return self._write_index_locked()

    def _write_index_locked(self) -> Path:
        path = self.root / INDEX_FILE
        data = self._scan(with_digests=True).to_index_bytes()
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == data:
                return path
        write_atomic(path, data)
        return path

    @staticmethod
    def _write_file(path: Path, data: bytes) -> None:
        with open(path, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(path, 0o644)

    @staticmethod
    def _fsync_directory(path: Path) -> None:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
