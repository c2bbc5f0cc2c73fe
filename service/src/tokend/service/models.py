"""The models a service answers from: a registry plus model resolution, first-load bookkeeping and the
refresh step of hot reload.

A request resolves its reference once (``load``) and keeps the returned LoadedModel for the whole call, so
a version published or an alias moved mid-call never mixes two versions in one answer. Loading is the
registry's (cached per process, thread-safe, in background threads); a request waits at most
REQUEST_LOAD_WAIT_SECONDS for a version still loading. This class checks the reference first, times first loads,
tells an observer (the gRPC worker's metrics), and logs them.

References are checked before the registry sees them: an empty one or a malformed one (``"@1"``, ``"a@"``,
``"x@y@z"``, ``"name@0"``) is InvalidRequest; one longer than ``MAX_MODEL_REF_CHARS`` (no model can have
such a name) is ModelNotFoundError quoting a bounded prefix; anything else is the registry's to resolve.

Hot reload (``refresh``, every ``--reload-interval`` seconds) also unloads the versions nobody needs any more
(``unload_unused_after`` > 0: the registry's ``unload_unused``, keeping the configured references), and with it
on, a reference the catalog does not list re-reads the catalog before it is NOT_FOUND (``registry.recheck``:
rate-limited, a bounded wait), so a version published a moment ago answers at once when pinned.

    served = ServedModels(Registry.open())
    loaded, failed = served.load_configured(None)   # every model, latest version; failed: {ref: error}
    model = served.load("cl100k_base")        # LoadedModel(name, version, manifest, ..., encoding)
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tokend.errors import ModelLoadingError, ModelNotFoundError
from tokend.logs import log_event
from tokend.registry.model_ref import MalformedModelRef, parse_model_ref
from tokend.registry.polling import Poller
from tokend.service.batch import CallState
from tokend.service.call_record import current_record
from tokend.service.errors import DeadlineExpired, InvalidRequest, echo

__all__ = ["ServedModels", "ModelObserver", "PAYLOAD_FORMAT_NAMES", "MAX_MODEL_REF_CHARS", "REQUEST_LOAD_WAIT_SECONDS"]

_log = logging.getLogger("tokend.service.models")

# Manifest payload formats → the names the API uses (ModelDetails.payload_format).
PAYLOAD_FORMAT_NAMES = {
    "tiktoken_ranks": "tiktoken",
    "minbpe_model": "minbpe",
    "hf_tokenizer_json": "huggingface",
    "tekken_json": "tekken",
    "sentencepiece_model": "sentencepiece",
}
# A request for a version not loaded yet waits this long for its load (a directory load takes < 0.5 s);
# the registry also bounds how many requests wait at once, so slow loads never hold every handler thread.
REQUEST_LOAD_WAIT_SECONDS = 5.0
# Longer than any reference that can resolve (a 128-character name, '@', a 64-character alias).
MAX_MODEL_REF_CHARS = 256
# A reference the catalog does not list waits this long for a re-read of it (at most one a second per process,
# so up to a second for its turn, plus the read: a directory's or an index.json on a LAN takes milliseconds).
RECHECK_WAIT_SECONDS = 2.0


class ModelObserver(Protocol):
    """Told about first loads (the gRPC worker records them as metrics)."""

    def model_loaded(self, loaded: Any, seconds: float, payload_format: str) -> None: ...

    def model_load_failed(self, name: str, version: int) -> None: ...

    def model_unloaded(self, name: str, version: int) -> None: ...


class ServedModels:
    """``on_unloaded()``: called after a refresh unloaded versions (a worker gives the freed memory back).
    ``hot_reload`` sets what a refresh does beyond re-reading: ``unload_unused_after``, seconds (0 = never) after
    its last pinned call that a version no moving or configured reference serves is unloaded, keeping at most
    ``max_pinned_versions`` such versions; ``recheck_misses``, re-read the catalog for a reference it does not
    list."""

    def __init__(
        self, registry: Any, *, observer: ModelObserver | None = None, on_unloaded: Callable[[], None] | None = None
    ) -> None:
        self.registry = registry
        self._observer = observer
        self._on_unloaded = on_unloaded
        self.unload_unused_after = 0.0
        self.max_pinned_versions = 0
        self.recheck_misses = False
        self._lock = threading.Lock()
        # (name, version) -> the LoadedModel recorded as loaded here: a version unloaded and loaded again is a new
        # object, recorded again; weak, so an unloaded version's model is freed once its last call ends.
        self._loaded: weakref.WeakValueDictionary[tuple[str, int], Any] = weakref.WeakValueDictionary()
        # (name, version) -> its encoding, for statistics (weak for the same reason)
        self._encodings: weakref.WeakValueDictionary[tuple[str, int], Any] = weakref.WeakValueDictionary()

    def resolve(self, ref: str, *, deadline: float | None = None) -> Any:
        """``registry.resolve`` after the checks of the module docstring. ``deadline`` (``time.monotonic()``
        seconds): a wait for a catalog re-read ends by then (DeadlineExpired when it passed)."""
        if not ref:
            raise InvalidRequest(
                "model", f"no model given; name one of: {self._names()} (optionally name@version or name@alias)"
            )
        if len(ref) > MAX_MODEL_REF_CHARS:
            available = self.registry.list_models()
            raise ModelNotFoundError(
                echo(ref), [summary.name for summary in available],
                f"unknown model {echo(ref)!r}: no model reference is longer than {MAX_MODEL_REF_CHARS} characters; "
                f"available models: {self._names()}",
            )  # fmt: skip
        try:
            parse_model_ref(ref)
        except MalformedModelRef as exc:
            raise InvalidRequest("model", str(exc)) from None
        except ValueError:
            pass  # spelled as no model is: the registry answers ModelNotFoundError listing what exists
        try:
            return self.registry.resolve(ref)
        except ModelNotFoundError:
            # Published since this process last read the catalog? Once a re-read that started now has finished.
            if not self.recheck_misses:
                raise
            if not self.registry.recheck(ref, _within(RECHECK_WAIT_SECONDS, deadline)):
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineExpired(0, 0, waiting=f"for a re-read of the registry's catalog for {echo(ref)!r}") from None
                raise
        return self.registry.resolve(ref)

    def load(self, ref: str, *, wait: float | None = REQUEST_LOAD_WAIT_SECONDS, call: CallState | None = None) -> Any:
        """The LoadedModel for ``ref`` (resolved now); records it the first time. ``wait``: seconds to wait
        for a load in progress (then ModelLoadingError: UNAVAILABLE, which clients retry); None waits until
        the load ends (start-up). ``call``: a request's; waits (a catalog re-read, a load) end by its deadline,
        then DeadlineExpired."""
        deadline = _deadline(call)
        exact = self.resolve(ref, deadline=deadline)
        record = current_record()
        if record is not None:
            record.model = (exact.name, exact.version)
        started = time.perf_counter()
        try:
            # By the reference as given, so `name` can fall back to an older version when the newest fails.
            loaded = self.registry.load(ref, wait=wait if wait is None else _within(wait, deadline))
        except ModelLoadingError:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExpired(0, 0, waiting=f"for {echo(ref)!r} to load") from None
            raise  # still loading (UNAVAILABLE: retried): not a load failure
        except ModelNotFoundError:
            raise  # removed meanwhile: not a load failure
        except Exception as exc:
            if self._observer is not None:
                self._observer.model_load_failed(exact.name, exact.version)
            log_event(
                _log, "model_load_failed", level=logging.ERROR, model=exact.name, version=exact.version,
                error=f"{type(exc).__name__}: {exc}",
            )  # fmt: skip
            raise
        key = (loaded.name, loaded.version)
        if record is not None:
            record.model = key
        if self._loaded.get(key) is not loaded:
            with self._lock:  # held only to record, never across a load
                if self._loaded.get(key) is not loaded:
                    # The registry's own measure (read + verify + parse) excludes waiting for the load.
                    self._record_loaded(loaded, getattr(loaded, "load_seconds", 0.0) or (time.perf_counter() - started))
                    self._loaded[key] = loaded
                    self._encodings[key] = loaded.encoding
        return loaded

    def configured_refs(self, models: Sequence[str] | None) -> list[str]:
        """The references to load up front: ``models`` as given, or every model's latest version."""
        if models:
            return list(models)
        return [summary.name for summary in self.registry.list_models()]

    def load_configured(self, models: Sequence[str] | None) -> tuple[list[Any], dict[str, Exception]]:
        """Load every configured model: (the loaded ones, {reference: error} of those that failed to load).

        A malformed reference raises InvalidRequest and one that names no model ModelNotFoundError, before
        anything loads (configuration errors: no later publish is waited for). A version that exists but does
        not load (a damaged payload, a manifest the reader refuses) is returned, not raised: the worker serves
        the others (one damaged file must not keep a restarted worker from serving every intact model),
        requests for it fail as they would after any load failure, and hot reload loads it once it is
        repaired."""
        loaded, failed = [], {}
        refs = self.configured_refs(models)
        for ref in refs:
            self.resolve(ref)
        for ref in refs:
            try:
                loaded.append(self.load(ref, wait=None))
            except ModelNotFoundError:
                raise  # removed since it resolved: as much a configuration error
            except Exception as exc:  # logged and counted by load()
                failed[ref] = exc
        return loaded, failed

    def refresh(self, models: Sequence[str] | None) -> Any:
        """One hot-reload step: re-read the registry, then load any new latest/alias targets now, so the
        first request for them does not pay the load. Errors of one model are logged, not raised."""
        report = self.registry.refresh()
        if report.error:
            log_event(_log, "registry_refresh_failed", level=logging.WARNING, error=report.error)
        elif report.changed:
            log_event(
                _log, "registry_refreshed", added=report.added, removed=report.removed,
                alias_moves=[str(move) for move in report.alias_moves], failed=sorted(report.failed),
                damaged=sorted(report.damaged), loading=report.loading,
            )  # fmt: skip
        for ref in self.configured_refs(models):
            try:
                self.load(ref)
            except Exception as exc:  # keep serving what is loaded; the failure is logged and counted
                log_event(
                    _log, "model_reload_failed", level=logging.WARNING, model=ref, error=f"{type(exc).__name__}: {exc}"
                )
        if self.unload_unused_after > 0 and self.unload_unused(models) and self._on_unloaded is not None:
            self._on_unloaded()  # the unloaded models are garbage by now, unless a call still holds one
        return report

    def unload_unused(self, models: Sequence[str] | None) -> list[Any]:
        """Unload the versions nobody needs (the registry's ``unload_unused``, keeping ``models``' references):
        one ``model_unloaded`` log line each, and the observer told (its model-info gauge goes to 0)."""
        unloaded = self.registry.unload_unused(
            self.unload_unused_after, max_pinned=self.max_pinned_versions, keep=self.configured_refs(models)
        )
        for model in unloaded:
            if self._observer is not None:
                self._observer.model_unloaded(model.name, model.version)
            log_event(
                _log, "model_unloaded", model=model.name, version=model.version, idle_after=self.unload_unused_after,
                max_pinned_versions=self.max_pinned_versions,
            )  # fmt: skip
        return unloaded

    def hot_reload(
        self,
        interval: float,
        models: Sequence[str] | None,
        *,
        unload_unused_after: float = 0.0,
        max_pinned_versions: int = 0,
    ) -> Poller | None:
        """Start ``refresh(models)`` every ``interval`` seconds (the registry's Poller), unloading unused versions
        at each (``unload_unused_after`` > 0) and re-reading the catalog for references it does not list; None
        when 0 (nothing of the three: a catalog read once keeps every version it lists)."""
        if interval <= 0:
            return None
        self.unload_unused_after = unload_unused_after
        self.max_pinned_versions = max_pinned_versions
        self.recheck_misses = True
        poller = Poller(lambda: self.refresh(models), interval, name="tokend-hot-reload")
        poller.start()
        return poller

    def piece_cache_stats(self, name: str, version: int) -> Any:
        """The engine's cache statistics for a loaded version (None if it was never loaded here).

        From the encoding this worker loaded, not a new registry lookup: called after every call, it must
        cost next to nothing, and a version removed from the registry since keeps its statistics."""
        encoding = self._encodings.get((name, version))
        return None if encoding is None else encoding.piece_cache_stats()

    def _names(self) -> str:
        return ", ".join(summary.name for summary in self.registry.list_models()) or "none (the registry is empty)"

    def _record_loaded(self, loaded: Any, seconds: float) -> None:
        payload_format = payload_format_name(loaded.manifest.payload_format)
        if self._observer is not None:
            self._observer.model_loaded(loaded, seconds, payload_format)
        log_event(
            _log, "model_loaded", model=loaded.name, version=loaded.version, payload_format=payload_format,
            sha256=loaded.manifest_sha256, n_vocab=loaded.encoding.n_vocab, seconds=round(seconds, 4),
        )  # fmt: skip


def payload_format_name(payload_format: str) -> str:
    """The API's name of a manifest payload format (``tiktoken_ranks`` → ``tiktoken``)."""
    return PAYLOAD_FORMAT_NAMES.get(payload_format, payload_format)


def _deadline(call: CallState | None) -> float | None:
    """``call``'s deadline in ``time.monotonic()`` seconds (None: none, or no call)."""
    remaining = None if call is None else call.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _within(wait: float, deadline: float | None) -> float:
    """``wait`` seconds, or fewer: what is left before ``deadline`` (never below 0)."""
    return wait if deadline is None else max(0.0, min(wait, deadline - time.monotonic()))
