"""`Registry`: resolve model references, load verified Encodings once, publish, alias, hot reload.

    >>> registry = Registry.open(None)                   # None = the embedded registry (read-only)
    >>> [model.name for model in registry.list_models()]
    ['alice_2k', 'cl100k_base', 'gpt2', 'o200k_base', 'o200k_harmony', 'p50k_base', 'p50k_edit', 'r50k_base']
    >>> registry.resolve("alice_2k")                     # latest = highest version
    ModelVersionRef(name='alice_2k', version=1)
    >>> encoding = registry.get_encoding("alice_2k@1")   # loaded once, verified, cached
    >>> encoding.decode(encoding.encode("Alice was beginning to get very tired"))
    'Alice was beginning to get very tired'

A directory (or an http(s):// URL: a remote registry, read-only) adds aliases, publishing and hot reload:

    registry = Registry.open("models/")
    registry.resolve("mymodel@stable")                   # ModelVersionRef(name='mymodel', version=3)
    encoding = registry.get_encoding("mymodel")          # latest = highest version, loaded once, cached
    registry.load("mymodel@2", wait=5.0)                 # a request: ModelLoadingError (retry) after 5 s
    registry.start_polling(30.0)                         # hot reload: new versions and alias moves

Thread safety: lookups read an immutable catalog snapshot that `refresh()` swaps atomically; each version
is loaded at most once per process, in a background thread (`version_loads`): callers wait for it without
a bound (library, start-up) or for a bounded time (requests), and a load has an overall deadline.
A `LoadedModel` is immutable, so a request that holds one finishes on that version whatever reloads do.

Switching: `name` (latest) and `name@alias` move. Once one of them serves a loaded version, it keeps
serving it until its new target has loaded and verified; that load starts in the background when the
move is seen (at refresh, or at the next resolve). A target that fails leaves the old version in service.
`name` means the newest version not known to be bad: a process whose newest version fails to load falls
back to the next one down.

Failure isolation: a loaded version is never dropped because of a registry fault. A file that is damaged
or changed after the load is reported (`RefreshReport.damaged`, an error log at every refresh, `verify()`)
while the copy verified at load time keeps serving. Failed loads are remembered (`load_failures`): by
manifest digest when they follow from the content (a gzip bomb is inflated once, until the manifest
changes), until the next refresh when they concern the files as stored, briefly when they are I/O errors.
`refresh()` never raises: a source that cannot be read keeps the previous catalog.

Unused versions: `unload_unused(idle_after, max_pinned=, keep=)` (a server calls it at each refresh) drops
the loaded versions that no moving reference serves or is switching to, that are not a latest or an alias
target, not in `keep`, and that no pinned call (`name@7`) used within `idle_after` seconds (and beyond
`max_pinned` such versions, the least recently pinned); the next call for one loads it again
(`unused_versions`). `recheck(ref, wait)`: a caller whose reference the catalog did not list asks for a re-read
(rate-limited, in the background, only for references a re-read could list: `catalog_rechecks`) and resolves
again.

Not handled: deleting versions (remove the directory by hand), cancelling a load nobody waits for any more
(it runs to its deadline).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from tokend.engine import Encoding
from tokend.errors import ModelLoadingError, ModelNotFoundError, RegistryError, TokendError
from tokend.registry.catalog import Catalog, ModelSummary
from tokend.registry.catalog_rechecks import CatalogRechecks
from tokend.registry.directory_source import DirectorySource
from tokend.registry.hot_reload import HotReload
from tokend.registry.manifest import Manifest
from tokend.registry.model_loader import DEFAULT_LOAD_TIMEOUT_SECONDS, ModelLoader
from tokend.registry.model_ref import ModelVersionRef, ParsedModelRef, parse_model_ref
from tokend.registry.moving_references import MovingReferences
from tokend.registry.polling import Poller
from tokend.registry.publishing import Publishing
from tokend.registry.reports import LoadedModel, VerificationResult
from tokend.registry.source import Source
from tokend.registry.unused_versions import UnusedVersions
from tokend.registry.version_loads import DEFAULT_MAX_WAITING, fresh_error

logger = logging.getLogger(__name__)

EMBEDDED_REGISTRY_DIR = Path(__file__).parent / "default"


class Registry(Publishing, HotReload):
    """Models of one source. Build with `Registry.open(location)`."""

    def __init__(
        self,
        source: Source,
        *,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT_SECONDS,
        max_waiting: int = DEFAULT_MAX_WAITING,
    ) -> None:
        self._source = source
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()  # one refresh at a time
        self._catalog_lock = threading.Lock()  # one catalog read and swap at a time (refresh or recheck)
        self._catalog: Catalog = source.scan()
        self._models = ModelLoader(
            source, load_timeout=load_timeout, max_waiting=max_waiting, is_published=self._is_published
        )
        self._moving = MovingReferences()
        self._unused = UnusedVersions()
        self._served_at_last_sweep: set[ModelVersionRef] = set()  # by moving references (unload_unused)
        self._rechecks = CatalogRechecks(self._recheck_catalog, name=f"tokend-catalog-recheck {source.location}")
        self._poller: Poller | None = None

    @classmethod
    def open(
        cls,
        location: str | Path | None = None,
        *,
        cache_dir: str | Path | None = None,
        create: bool = False,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT_SECONDS,
    ) -> Registry:
        """None: the embedded default registry (read-only). `http(s)://…`: a remote registry cached in
        `cache_dir`. Anything else: a local directory (`create=True` makes it if missing). `load_timeout`:
        seconds one load (download, checks, parse) may take before it is given up."""
        if location is None:
            source: Source = DirectorySource(EMBEDDED_REGISTRY_DIR, writable=False, label="the embedded default registry")
        else:
            text = str(location)
            if text.startswith(("http://", "https://")):
                from tokend.registry.http_source import HttpSource  # http.client and ssl: only for remote registries

                source = HttpSource(text, cache_dir=cache_dir, load_timeout=load_timeout)
            elif "://" in text:
                raise RegistryError(f"unsupported registry location {text!r}: use a directory path or an http(s):// URL")
            else:
                source = DirectorySource.create(text) if create else DirectorySource(text)
        return cls(source, load_timeout=load_timeout)

    @property
    def location(self) -> str:
        return self._source.location

    @property
    def source(self) -> Source:
        return self._source

    @property
    def load_timeout(self) -> float:
        return self._models.load_timeout

    def _is_loaded(self, name: str) -> Callable[[int], bool]:
        return lambda version: self._models.get(ModelVersionRef(name, version)) is not None

    def _is_published(self, vref: ModelVersionRef) -> bool:
        entry = self._catalog.entries.get(vref.name)
        return entry is not None and vref.version in entry.versions

    # --- lookup ------------------------------------------------------------------------------------

    def list_models(self) -> list[ModelSummary]:
        return self._catalog.summaries()

    def resolve(self, ref: str) -> ModelVersionRef:
        """`name`, `name@version` or `name@alias` -> the exact version (ModelNotFoundError lists what exists).

        `name` and `name@alias` give the version they serve now: when their target moved to a version
        that is not loaded yet, the previous one until the new one has loaded (its load starts now, in
        the background); `name` skips versions known to be bad."""
        vref, switch_to = self._resolve(ref)
        if switch_to is not None:
            self._models.start(switch_to)
        return vref

    def _resolve(self, ref: str, parsed: ParsedModelRef | None = None) -> tuple[ModelVersionRef, ModelVersionRef | None]:
        """(the version `ref` serves now, the version it switches to once loaded or None). No side effects
        beyond recording which loaded version a moving reference serves. `parsed`: `ref`, parsed already."""
        catalog = self._catalog
        if parsed is None:
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
        name = parsed.name
        if parsed.version is not None:
            if parsed.version not in entry.versions:
                raise self._not_found(ref, catalog, name, f"version {parsed.version}")
            return ModelVersionRef(name, parsed.version), None
        if parsed.alias is not None:
            target = entry.aliases.get(parsed.alias)
            if target is None:
                raise self._not_found(ref, catalog, name, f"alias {parsed.alias!r}")
        else:
            target = entry.latest_version
        key = (name, parsed.alias)
        if self._moving.serving(key) == target:  # the common case, on every request: settled on its target
            exact = ModelVersionRef(name, target)
            if self._models.get(exact) is not None:
                return exact, None
        candidates = [target] if parsed.alias is not None else sorted(entry.versions, reverse=True)
        serving, switch_to = self._moving.pick(
            key,
            candidates,
            is_loaded=self._is_loaded(name),
            is_refused=lambda version: self._models.refused(ModelVersionRef(name, version)),
        )
        return ModelVersionRef(name, serving), None if switch_to is None else ModelVersionRef(name, switch_to)

    @staticmethod
    def _not_found(ref: str, catalog: Catalog, name: str, what: str) -> ModelNotFoundError:
        available = catalog.available_refs(name)
        return ModelNotFoundError(ref, available, f"model {name!r} has no {what}; available: {_listing(available)}")

    def manifest(self, ref: str) -> Manifest:
        """The manifest of the version `ref` serves: the verified one in memory if loaded, else read now."""
        vref = self._resolve(ref)[0]
        loaded = self._models.get(vref)
        return loaded.manifest if loaded is not None else self._models.read_manifest(vref)[0]

    # --- loading -----------------------------------------------------------------------------------

    def load(self, ref: str, *, wait: float | None = None) -> LoadedModel:
        """The verified model for `ref`, loaded at most once per process.

        `wait=None` waits for a load in progress until it ends (its deadline bounds it); a number of seconds
        raises ModelLoadingError (a RegistryError: retry) after that long, or at once when enough callers
        already wait, while the load goes on. For `name`, a newest version that fails falls back to the
        newest one that loads; `name@version` and `name@alias` raise the failure."""
        try:
            parsed: ParsedModelRef | None = parse_model_ref(ref)
        except ValueError:
            parsed = None  # _resolve() raises the precise error
        moving = parsed is not None and parsed.version is None
        falls_back = moving and parsed.alias is None
        errors: list[TokendError] = []  # of the versions tried, newest first
        tried: set[ModelVersionRef] = set()
        while True:
            vref, switch_to = self._resolve(ref, parsed)
            if switch_to is not None:
                self._models.start(switch_to)
            if vref in tried:  # every version below failed too: report the newest one's failure
                raise fresh_error(errors[0])
            try:
                loaded = self._models.load(vref, wait)
            except ModelLoadingError:
                raise
            except TokendError as error:
                if not falls_back:
                    raise
                errors.append(error)
                tried.add(vref)
                continue
            if moving:
                self._moving.loaded((parsed.name, parsed.alias), loaded.version, is_loaded=self._is_loaded(parsed.name))
            elif parsed is not None:
                self._unused.used(vref)  # pinned: what keeps a version no moving reference serves (unload_unused)
            return loaded

    def get_encoding(self, ref: str) -> Encoding:
        return self.load(ref).encoding

    def loaded_models(self) -> list[LoadedModel]:
        return self._models.loaded()

    def verify(self, ref: str | None = None, *, payloads: bool = True) -> list[VerificationResult]:
        """Recompute every checksum of one version (`ref`) or of all versions, from the source as it is now
        (a loaded version whose files changed fails here while its verified copy keeps serving). Never
        raises for a bad version (its result carries the error); raises ModelNotFoundError for an unknown `ref`.
        `payloads=False` checks the manifests alone (read, compared with the index, parsed): what
        `tokend registry list` vouches for, without reading every payload."""
        if ref is not None:
            targets = [self._resolve(ref)[0]]
        else:
            targets = [
                ModelVersionRef(name, version)
                for name, entry in self._catalog.entries.items()
                for version in sorted(entry.versions)
            ]
        results = []
        for vref in targets:
            error = self._models.verify(vref, payload=payloads)
            results.append(VerificationResult(str(vref), None if error is None else str(error)))
        return results

    def _rescan(self) -> None:
        catalog = self._source.scan()
        with self._lock:
            self._catalog = catalog

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
