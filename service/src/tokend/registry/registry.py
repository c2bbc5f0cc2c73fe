"""`Registry`: resolve model references, load verified Encodings once, publish, alias, hot reload.

    >>> registry = Registry.open("models/")              # a directory; None = embedded; http(s):// = remote
    >>> registry.resolve("mymodel@stable")
    ModelVersionRef(name='mymodel', version=3)
    >>> encoding = registry.get_encoding("mymodel")     # latest = highest version, loaded once, cached
    >>> registry.start_polling(30.0)                     # hot reload: new versions and alias moves

Thread safety: lookups read an immutable catalog snapshot that `refresh()` swaps atomically; each version
is loaded at most once per process (a per-version lock makes concurrent first requests wait for one load).
A `LoadedModel` is immutable, so a request that holds one finishes on that version whatever reloads do.

Failure isolation: a version that fails verification is refused with the precise error (remembered
until the next refresh, so a corrupt file costs one check, not one per request); every other version
keeps working. `refresh()` never raises: a source that cannot be read keeps the previous catalog.

Not handled: deleting versions (remove the directory by hand), garbage-collecting loaded versions that
are no longer referenced (they stay in memory until the process ends or the version disappears).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from tokend.engine import Encoding
from tokend.errors import (
    ChecksumMismatchError,
    ModelFormatError,
    ModelNotFoundError,
    RegistryError,
    TokendError,
    VersionConflictError,
)
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.catalog import Catalog, ModelSummary
from tokend.registry.directory_source import DirectorySource
from tokend.registry.http_source import HttpSource
from tokend.registry.manifest import Compression, Manifest, PayloadFormat, Provenance, parse_manifest
from tokend.registry.model_ref import ModelVersionRef, parse_model_ref
from tokend.registry.payload import NewVersion, build_encoding, describe_payload, verify_payload
from tokend.registry.polling import Poller
from tokend.registry.reports import AliasMove, LoadedModel, RefreshReport, VerificationResult
from tokend.registry.source import Source

logger = logging.getLogger(__name__)

EMBEDDED_REGISTRY_DIR = Path(__file__).parent / "default"
# Content errors are remembered until the next refresh; I/O errors (a network blip) are retried.
_STICKY_ERRORS = (ChecksumMismatchError, ModelFormatError)
_AUTO_VERSION_ATTEMPTS = 8


class Registry:
    """Models of one source. Build with `Registry.open(location)`."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._catalog: Catalog = source.scan()
        self._loaded: dict[ModelVersionRef, LoadedModel] = {}
        self._load_locks: dict[ModelVersionRef, threading.Lock] = {}
        self._failures: dict[ModelVersionRef, TokendError] = {}
        self._pinned: dict[ModelVersionRef, str] = {}  # version -> SHA-256 of the manifest first read
        self._poller: Poller | None = None

    @classmethod
    def open(cls, location: str | Path | None = None, *, cache_dir: str | Path | None = None, create: bool = False) -> Registry:
        """None: the embedded default registry (read-only). `http(s)://…`: a remote registry cached in
        `cache_dir`. Anything else: a local directory (`create=True` makes it if missing)."""
        if location is None:
            return cls(DirectorySource(EMBEDDED_REGISTRY_DIR, writable=False, label="the embedded default registry"))
        text = str(location)
        if text.startswith(("http://", "https://")):
            return cls(HttpSource(text, cache_dir=cache_dir))
        if "://" in text:
            raise RegistryError(f"unsupported registry location {text!r}: use a directory path or an http(s):// URL")
        return cls(DirectorySource.create(text) if create else DirectorySource(text))

    @property
    def location(self) -> str:
        return self._source.location

    @property
    def source(self) -> Source:
        return self._source

    # --- lookup ------------------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        return self._catalog.summaries()

    def resolve(self, ref: str) -> ModelVersionRef:
        """`name`, `name@version` or `name@alias` -> the exact version (ModelNotFoundError lists what exists)."""
        catalog = self._catalog
        try:
            parsed = parse_model_ref(ref)
        except ValueError as error:
            available = catalog.available_refs()
            raise ModelNotFoundError(str(ref), available, f"{error}; available models: {_listing(available)}") from None
        entry = catalog.entries.get(parsed.name)
        if entry is None:
            available = catalog.available_refs()
            raise ModelNotFoundError(
                ref, available, f"unknown model {parsed.name!r} in {self.location}; available models: {_listing(available)}"
            )
        if parsed.version is not None:
            version: int | None = parsed.version if parsed.version in entry.versions else None
        elif parsed.alias is not None:
            version = entry.aliases.get(parsed.alias)
        else:
            version = entry.latest_version
        if version is None:
            available = catalog.available_refs(parsed.name)
            what = f"version {parsed.version}" if parsed.version is not None else f"alias {parsed.alias!r}"
            raise ModelNotFoundError(ref, available, f"model {parsed.name!r} has no {what}; available: {_listing(available)}")
        return ModelVersionRef(parsed.name, version)

    def manifest(self, ref: str) -> Manifest:
        return self._read_manifest(self.resolve(ref))[0]

    def _read_manifest(self, vref: ModelVersionRef) -> tuple[Manifest, str]:
        data = self._source.read_manifest(vref)
        digest = sha256_hex(data)
        recorded = self._source.expected_manifest_sha256(vref)
        if recorded is not None and recorded != digest:
            raise ChecksumMismatchError(
                expected=recorded, actual=digest, what=f"manifest of {vref} (compared with the registry index)"
            )
        with self._lock:
            pinned = self._pinned.setdefault(vref, digest)
        if pinned != digest:
            raise ChecksumMismatchError(
                expected=pinned,
                actual=digest,
                what=f"manifest of {vref} (it changed after this process first read it; published versions are "
                "immutable: restore it, or publish the change as a new version)",
            )
        manifest = parse_manifest(data, what=str(vref))
        if (manifest.name, manifest.version) != (vref.name, vref.version):
            raise ModelFormatError(
                f"the manifest stored as {vref} describes {manifest.ref}; the directory was renamed or copied by hand"
            )
        return manifest, digest

    # --- loading -----------------------------------------------------------------------------------

    def load(self, ref: str) -> LoadedModel:
        """The verified model for `ref`, loaded at most once per process."""
        vref = self.resolve(ref)
        loaded = self._loaded.get(vref)
        if loaded is not None:
            return loaded
        with self._lock:
            version_lock = self._load_locks.setdefault(vref, threading.Lock())
        with version_lock:
            loaded = self._loaded.get(vref)
            if loaded is not None:
                return loaded
            failure = self._failures.get(vref)
            if failure is not None:
                # A fresh copy per request: re-raising one instance would grow its traceback forever.
                raise copy.copy(failure).with_traceback(None) from None
            started = time.perf_counter()
            try:
                manifest, digest = self._read_manifest(vref)
                content = verify_payload(manifest, self._source.read_payload(manifest))
                encoding = build_encoding(manifest, content)
            except _STICKY_ERRORS as error:
                with self._lock:
                    self._failures[vref] = error
                logger.error("refusing %s: %s", vref, error)
                raise
            loaded = LoadedModel(vref.name, vref.version, manifest, digest, encoding, time.perf_counter() - started)
            with self._lock:
                self._loaded[vref] = loaded
            logger.info("loaded %s in %.3f s", vref, loaded.load_seconds)
            return loaded

    def get_encoding(self, ref: str) -> Encoding:
        return self.load(ref).encoding

    def loaded_models(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._loaded.values(), key=lambda model: (model.name, model.version))

    def verify(self, ref: str | None = None) -> list[VerificationResult]:
        """Recompute every checksum of one version (`ref`) or of all versions. Never raises for a bad
        version (its result carries the error); raises ModelNotFoundError for an unknown `ref`."""
        if ref is not None:
            targets = [self.resolve(ref)]
        else:
            targets = [
                ModelVersionRef(name, version)
                for name, entry in self._catalog.entries.items()
                for version in sorted(entry.versions)
            ]
        results = []
        for vref in targets:
            try:
                manifest, _ = self._read_manifest(vref)
                verify_payload(manifest, self._source.read_payload(manifest))
                results.append(VerificationResult(str(vref)))
            except TokendError as error:
                results.append(VerificationResult(str(vref), str(error)))
        return results

    # --- writing (directory sources) ------------------------------------------------------------------

    def publish(
        self,
        name: str,
        *,
        payload: bytes,
        payload_format: PayloadFormat,
        version: int | None = None,
        compression: Compression = "none",
        pattern: str | None = None,
        special_tokens: dict[str, int] | None = None,
        explicit_n_vocab: int | None = None,
        expected_content_sha256: str | None = None,
        description: str = "",
        provenance: Provenance | dict[str, Any],
        bos_token: str | None = None,
        eos_token: str | None = None,
        chat_template: str | None = None,
        share_payload_with: str | None = None,
    ) -> Manifest:
        """Publish payload bytes as `name@version` (None: the next version). Returns the stored manifest.

        The payload is loaded once before anything is written, so a broken payload is never published.
        Same content under an existing version is idempotent; different content raises VersionConflictError.
        `share_payload_with` ("o200k_base@1"): a version of this registry with the same payload content,
        whose file the new version then uses instead of a copy (`payload.shared_with` in its manifest).

            >>> registry.publish("mine", payload=model_text.encode(), payload_format="minbpe_model",
            ...                  provenance={"kind": "imported", "source": "mine.model"})
        """
        auto_version = version is None
        new = describe_payload(
            name=name,
            version=version if version is not None else self._next_version(name),
            payload_format=payload_format,
            stored=payload,
            compression=compression,
            pattern=pattern,
            special_tokens=special_tokens,
            explicit_n_vocab=explicit_n_vocab,
            expected_content_sha256=expected_content_sha256,
            description=description,
            provenance=provenance,
            bos_token=bos_token,
            eos_token=eos_token,
            chat_template=chat_template,
            shared_with=self.manifest(f"{self.resolve(share_payload_with)}") if share_payload_with else None,
        )
        for _ in range(_AUTO_VERSION_ATTEMPTS):
            try:
                return self.publish_version(new)
            except VersionConflictError:
                if not auto_version:
                    raise
                # Another publisher took that number first: take the next one.
                new = NewVersion(new.manifest.model_copy(update={"version": self._next_version(name)}), new.stored)
        raise RegistryError(f"could not find a free version for {name} after {_AUTO_VERSION_ATTEMPTS} attempts")

    def publish_version(self, new: NewVersion) -> Manifest:
        """Publish a prepared manifest + payload (see `payload.describe_payload`)."""
        manifest = self._source.publish(new)
        self._rescan()
        return manifest

    def _next_version(self, name: str) -> int:
        if not isinstance(self._source, DirectorySource):
            raise self._source._read_only("publish")
        return self._source.next_version(name)

    def set_alias(self, name: str, alias: str, version: int) -> int | None:
        """Point `name@alias` at an existing version; the move is recorded. Returns the previous version."""
        previous = self._source.set_alias(name, alias, version)
        self._rescan()
        return previous

    def alias_history(self, name: str) -> list[dict[str, Any]]:
        return self._source.alias_history(name)

    def _rescan(self) -> None:
        catalog = self._source.scan()
        with self._lock:
            self._catalog = catalog

    # --- hot reload --------------------------------------------------------------------------------

    def refresh(self) -> RefreshReport:
        """Re-read the source: pick up new versions and alias moves, drop removed versions, re-verify
        loaded ones. Never raises; see the report."""
        with self._refresh_lock:
            try:
                catalog = self._source.scan()
            except TokendError as error:
                logger.warning("registry %s not refreshed, keeping the previous catalog: %s", self.location, error)
                return RefreshReport(error=str(error))
            previous = self._catalog
            old_versions = _versions(previous)
            new_versions = _versions(catalog)
            with self._lock:
                self._failures.clear()  # a repaired file gets another chance
                for vref in old_versions - new_versions:
                    self._loaded.pop(vref, None)
                    self._pinned.pop(vref, None)
                loaded = list(self._loaded.items())
            failed: dict[str, str] = {}
            for vref, model in loaded:
                if vref not in new_versions:
                    continue
                error = self._recheck(vref, model)
                if error is not None:
                    failed[str(vref)] = str(error)
                    with self._lock:
                        self._loaded.pop(vref, None)
                        self._failures[vref] = error
                    logger.error("refusing %s from now on: %s", vref, error)
            with self._lock:
                self._catalog = catalog
            report = RefreshReport(
                added=sorted(str(v) for v in new_versions - old_versions),
                removed=sorted(str(v) for v in old_versions - new_versions),
                alias_moves=_alias_moves(previous, catalog),
                failed=failed,
            )
            if report.changed:
                logger.info(
                    "registry %s refreshed: added %s, removed %s, alias moves %s, failed %s",
                    self.location, report.added, report.removed, [str(m) for m in report.alias_moves], list(failed),
                )
            return report

    def _recheck(self, vref: ModelVersionRef, model: LoadedModel) -> TokendError | None:
        try:
            data = self._source.read_manifest(vref)
            if sha256_hex(data) != model.manifest_sha256:
                return ChecksumMismatchError(
                    expected=model.manifest_sha256,
                    actual=sha256_hex(data),
                    what=f"manifest of {vref} (changed while loaded; published versions are immutable)",
                )
            verify_payload(model.manifest, self._source.read_payload(model.manifest))
        except TokendError as error:
            return error
        return None

    def start_polling(self, interval: float, *, on_report: Callable[[RefreshReport], None] | None = None) -> None:
        """Call `refresh()` every `interval` seconds in a daemon thread until `stop_polling()`."""
        with self._lock:
            if self._poller is not None:
                raise RegistryError("this registry is already polling; call stop_polling() first")
            self._poller = Poller(self.refresh, interval, on_report=on_report, name=f"tokend-registry-poll {self.location}")
            self._poller.start()

    def stop_polling(self) -> None:
        with self._lock:
            poller, self._poller = self._poller, None
        if poller is not None:
            poller.stop()

    def close(self) -> None:
        self.stop_polling()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self.location!r})"


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "none (the registry is empty)"


def _versions(catalog: Catalog) -> set[ModelVersionRef]:
    return {ModelVersionRef(name, version) for name, entry in catalog.entries.items() for version in entry.versions}


def _alias_moves(old: Catalog, new: Catalog) -> list[AliasMove]:
    moves = []
    for name in sorted(set(old.entries) | set(new.entries)):
        before = old.entries[name].aliases if name in old.entries else {}
        after = new.entries[name].aliases if name in new.entries else {}
        for alias in sorted(set(before) | set(after)):
            if before.get(alias) != after.get(alias):
                moves.append(AliasMove(name, alias, before.get(alias), after.get(alias)))
    return moves
