"""`ModelLoader`: exact versions from a source to verified `LoadedModel`s, once per process, within bounds.

The registry resolves references to exact versions; this class loads them:

    >>> from tokend.registry.registry import Registry
    >>> source = Registry.open(None).source                 # the embedded registry's directory
    >>> loader = ModelLoader(source, load_timeout=60.0)
    >>> model = loader.load(ModelVersionRef("alice_2k", 1), wait=None)   # a LoadedModel, cached
    >>> model.ref, loader.load(ModelVersionRef("alice_2k", 1), wait=None) is model
    ('alice_2k@1', True)
    >>> loader.recheck(ModelVersionRef("alice_2k", 1)) is None          # None, or why its files no longer verify
    True

A request bounds its wait; the load goes on in the background and a later call finds it loaded:

    loader.load(ModelVersionRef("big", 1), wait=5.0)   # ModelLoadingError (retry shortly) after 5 s

One load = read the manifest (check it against the index), parse it, check the limits it asks for, read
the payload (at most its size + 1 bytes), check size and SHA-256, inflate (bounded), check the content,
parse into an Encoding — in a background thread (`version_loads`), with one deadline for all of it.
Every failure is remembered with its kind (`load_failures`), so the next caller is answered at once.

A loaded version stays loaded whatever happens to its files later (only `drop` removes it, for versions
that left the source or that nobody needs any more: `Registry.unload_unused`); the manifest digest it was
verified with pins it.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable

from tokend.engine import Encoding

from tokend.errors import ChecksumMismatchError, ModelFormatError, RegistryError, TokendError
from tokend.registry.atomic_files import sha256_hex
from tokend.registry.load_failures import FailureKind, LoadFailures
from tokend.registry.manifest import Manifest, parse_manifest
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import (
    build_chat_encoder,
    build_encoding,
    check_payload_limits,
    check_stored_payload,
    unpack_payload,
    verify_payload,
)
from tokend.registry.reports import LoadedModel
from tokend.registry.source import Source
from tokend.registry.version_loads import DEFAULT_MAX_WAITING, Load, VersionLoads, fresh_error

logger = logging.getLogger("tokend.registry.registry")  # one logger for everything a registry reports

DEFAULT_LOAD_TIMEOUT_SECONDS = 60.0  # one load: manifest + payload reads, checks, parse


class ModelLoader:
    """Loads exact versions of `source`; `is_published(vref)` says whether a finished load may be cached
    (a version removed while it loaded is handed to its waiters but not kept)."""

    def __init__(
        self,
        source: Source,
        *,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT_SECONDS,
        max_waiting: int = DEFAULT_MAX_WAITING,
        is_published: Callable[[ModelVersionRef], bool] = lambda vref: True,
    ) -> None:
        self.source = source
        self.load_timeout = load_timeout
        self.failures = LoadFailures()
        self._is_published = is_published
        self._lock = threading.Lock()
        self._loaded: dict[ModelVersionRef, LoadedModel] = {}
        self._loads = VersionLoads(max_waiting=max_waiting)
        # Versions that differ only in their chat format or description (`publish_chat_format`) share one
        # Encoding: the same ids, one copy of the vocabulary in memory, one parse.
        self._encodings: weakref.WeakValueDictionary[tuple, Encoding] = weakref.WeakValueDictionary()

    # --- what is loaded --------------------------------------------------------------------------

    def get(self, vref: ModelVersionRef) -> LoadedModel | None:
        return self._loaded.get(vref)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._loaded.values(), key=lambda model: (model.name, model.version))

    def drop(self, vrefs: Iterable[ModelVersionRef]) -> None:
        """Forget versions that left the source or nobody needs (requests holding them finish on them)."""
        with self._lock:
            for vref in vrefs:
                self._loaded.pop(vref, None)

    def refused(self, vref: ModelVersionRef) -> bool:
        """True while a failure of `vref` is remembered (see load_failures for how long)."""
        return self.failures.get(vref) is not None

    # --- loading ---------------------------------------------------------------------------------

    def load(self, vref: ModelVersionRef, wait: float | None) -> LoadedModel:
        """The loaded version; starts its load if needed. `wait`: None = until the load ends (its deadline
        bounds it), else seconds before ModelLoadingError. A remembered failure is raised at once."""
        while True:
            loaded = self._loaded.get(vref)
            if loaded is not None:
                return loaded
            failure = self.failures.get(vref)
            if failure is not None:
                raise fresh_error(failure.error)
            load = self.start(vref)
            if load is not None:
                return self._loads.wait(load, wait)

    def start(self, vref: ModelVersionRef) -> Load | None:
        """The load of `vref` in flight (started now if needed); None when it is loaded or refused."""
        with self._lock:
            if vref in self._loaded or self.refused(vref):
                return None
            return self._loads.start(vref, lambda: self._load_now(vref))

    def _load_now(self, vref: ModelVersionRef) -> LoadedModel:
        """Read, verify and parse one version (in its loader thread); records the outcome before returning."""
        started = time.perf_counter()
        deadline = time.monotonic() + self.load_timeout
        kind: FailureKind = "stored"  # what a failure at this point follows from (see load_failures)
        digest: str | None = None
        try:
            data = self.source.read_manifest(vref, deadline=deadline)
            digest = sha256_hex(data)
            self._check_against_index(vref, digest)
            kind = "content"
            manifest = _parse_manifest(vref, data)
            check_payload_limits(manifest)
            kind = "stored"
            stored = self.source.read_payload(manifest, deadline=deadline)
            check_stored_payload(manifest, stored)
            kind = "content"
            encoding = self._encoding(manifest, stored)
            chat = build_chat_encoder(manifest, encoding)
        except TokendError as error:
            if isinstance(error, RegistryError):
                kind = "transient"
            self.failures.remember(vref, error, kind=kind, manifest_sha256=digest)
            log = logger.warning if kind == "transient" else logger.error
            log("refusing %s (%s failure): %s", vref, kind, error)
            raise
        loaded = LoadedModel(vref.name, vref.version, manifest, digest, encoding, time.perf_counter() - started, chat)
        with self._lock:
            if self._is_published(vref):
                self._loaded[vref] = loaded
        logger.info("loaded %s in %.3f s", vref, loaded.load_seconds)
        return loaded

    def _encoding(self, manifest: Manifest, stored: bytes) -> Encoding:
        """The Encoding of a verified payload: the one already built from the same stored bytes (verified
        against the same SHA-256) under the same settings, or a new one."""
        key = (
            manifest.name, manifest.payload_format, manifest.payload.sha256, manifest.payload.content_sha256,
            manifest.pattern, tuple(sorted(manifest.special_tokens.items())), manifest.explicit_n_vocab, manifest.n_vocab,
        )  # fmt: skip
        encoding = self._encodings.get(key)
        if encoding is None:
            encoding = build_encoding(manifest, unpack_payload(manifest, stored))
            self._encodings[key] = encoding
        return encoding

    # --- checking files against what was verified ------------------------------------------------

    def read_manifest(self, vref: ModelVersionRef, *, deadline: float | None = None) -> tuple[Manifest, str]:
        """Read, check (against the index, and against the digest it was loaded with) and parse a manifest."""
        data = self.source.read_manifest(vref, deadline=deadline)
        digest = sha256_hex(data)
        self._check_against_index(vref, digest)
        loaded = self._loaded.get(vref)
        if loaded is not None and loaded.manifest_sha256 != digest:
            raise ChecksumMismatchError(
                expected=loaded.manifest_sha256,
                actual=digest,
                what=f"manifest of {vref} (it changed after this process loaded and verified it; published versions "
                "are immutable: restore it, or publish the change as a new version)",
            )
        return _parse_manifest(vref, data), digest

    def verify(self, vref: ModelVersionRef, *, payload: bool = True) -> TokendError | None:
        """None if every checksum of `vref` on the source matches now, else why not (content included).
        `payload=False`: the manifest only (read, checked against the index, parsed)."""
        try:
            deadline = time.monotonic() + self.load_timeout
            manifest, _ = self.read_manifest(vref, deadline=deadline)
            if not payload:
                return None
            check_payload_limits(manifest)
            verify_payload(manifest, self.source.read_payload(manifest, deadline=deadline))
        except TokendError as error:
            return error
        return None

    def recheck(self, vref: ModelVersionRef) -> TokendError | None:
        """None if the files of a loaded version still are the ones it was verified from, else why not.
        (Stored bytes equal to the verified ones imply the same content: no need to inflate again.)"""
        try:
            deadline = time.monotonic() + self.load_timeout
            manifest, _ = self.read_manifest(vref, deadline=deadline)
            check_stored_payload(manifest, self.source.read_payload(manifest, deadline=deadline))
        except TokendError as error:
            return error
        return None

    def manifest_digest_now(self, vref: ModelVersionRef) -> str | None:
        """The digest of `vref`'s manifest on the source now: the index's record, else the file's."""
        recorded = self.source.expected_manifest_sha256(vref)
        if recorded is not None:
            return recorded
        return sha256_hex(self.source.read_manifest(vref, deadline=time.monotonic() + self.load_timeout))

    def _check_against_index(self, vref: ModelVersionRef, digest: str) -> None:
        recorded = self.source.expected_manifest_sha256(vref)
        if recorded is not None and recorded != digest:
            raise ChecksumMismatchError(
                expected=recorded, actual=digest, what=f"manifest of {vref} (compared with the registry index)"
            )


def _parse_manifest(vref: ModelVersionRef, data: bytes) -> Manifest:
    manifest = parse_manifest(data, what=str(vref))
    if (manifest.name, manifest.version) != (vref.name, vref.version):
        raise ModelFormatError(
            f"the manifest stored as {vref} describes {manifest.ref}; the directory was renamed or copied by hand"
        )
    return manifest
