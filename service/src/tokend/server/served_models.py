"""The models one worker serves: a registry plus load metrics, load logs and the reload loop's step.

A request resolves its reference once (``load``) and keeps the returned LoadedModel for the whole
call, so a version published or an alias moved mid-call never mixes two versions in one response.
Loading is the registry's (cached per process, thread-safe, in background threads); this class only
records ``tokend_model_load_seconds`` / ``tokend_model_info`` / failures for first loads, and logs them.
A request waits at most REQUEST_LOAD_WAIT_SECONDS for a version that is still loading (then
ModelLoadingError: UNAVAILABLE, which clients retry); start-up loads wait until the load ends.

Not handled: unloading versions nobody asks for any more (they stay cached until the worker exits).

    served = ServedModels(Registry.open(), metrics=ServerMetrics(CollectorRegistry()))
    served.load_configured(None)              # every model, latest version, before SERVING
    model = served.load("cl100k_base")        # LoadedModel(name, version, manifest, ..., encoding)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from tokend.errors import ModelLoadingError, ModelNotFoundError, TokendError
from tokend.server.logs import log_event
from tokend.server.metrics import ServerMetrics
from tokend.server.request_errors import InvalidRequest

__all__ = ["ServedModels", "PAYLOAD_FORMAT_NAMES", "CURRENT_MODEL", "REQUEST_LOAD_WAIT_SECONDS"]

_log = logging.getLogger("tokend.server.models")

# (name, version) the current call resolved, for the logging/error interceptors; set per call.
CURRENT_MODEL: ContextVar[tuple[str, int] | None] = ContextVar("tokend_current_model", default=None)

# A request for a version not loaded yet waits this long for its load (a directory load takes < 0.5 s);
# the registry also bounds how many requests wait at once, so slow loads never hold every handler thread.
REQUEST_LOAD_WAIT_SECONDS = 5.0

# Manifest payload formats → the names the API uses (ModelDetails.payload_format).
PAYLOAD_FORMAT_NAMES = {"tiktoken_ranks": "tiktoken", "minbpe_model": "minbpe"}


class ServedModels:
    def __init__(self, registry: Any, *, metrics: ServerMetrics | None) -> None:
        self.registry = registry
        self._metrics = metrics
        self._lock = threading.Lock()
        self._loaded: set[tuple[str, int]] = set()  # versions this worker has loaded (and recorded)

    def resolve(self, ref: str) -> Any:
        """``registry.resolve`` with a request-shaped error for an empty or malformed reference."""
        if not ref:
            available = ", ".join(summary.name for summary in self.registry.list_models())
            raise InvalidRequest("model", f"no model given; name one of: {available} (optionally name@version or name@alias)")
        try:
            return self.registry.resolve(ref)
        except TokendError:
            raise
        except ValueError as exc:  # the reference does not parse
            raise InvalidRequest("model", str(exc)) from None

    def load(self, ref: str, *, wait: float | None = REQUEST_LOAD_WAIT_SECONDS) -> Any:
        """The LoadedModel for ``ref`` (resolved now); records it the first time. ``wait``: seconds to wait
        for a load in progress (None: until it ends, for start-up)."""
        exact = self.resolve(ref)
        key = (exact.name, exact.version)
        CURRENT_MODEL.set(key)
        if key in self._loaded:
            return self.registry.load(f"{exact.name}@{exact.version}")
        started = time.perf_counter()
        try:
            # By the reference as given, so `name` can fall back to an older version when the newest fails.
            loaded = self.registry.load(ref, wait=wait)
        except (ModelNotFoundError, ModelLoadingError):
            raise  # removed meanwhile, or still loading (UNAVAILABLE: retried): not a load failure
        except Exception as exc:
            if self._metrics is not None:
                self._metrics.model_load_failures.labels(exact.name, str(exact.version)).inc()
            log_event(
                _log,
                "model_load_failed",
                level=logging.ERROR,
                model=exact.name,
                version=exact.version,
                error=f"{type(exc).__name__}: {exc}",
            )
            raise
        key = (loaded.name, loaded.version)
        CURRENT_MODEL.set(key)
        with self._lock:  # held only to record, never across a load
            if key not in self._loaded:
                # The registry's own measure (read + verify + parse) excludes waiting for the load.
                self._record_loaded(loaded, getattr(loaded, "load_seconds", 0.0) or (time.perf_counter() - started))
                self._loaded.add(key)
        return loaded

    def configured_refs(self, models: Sequence[str] | None) -> list[str]:
        """The references to load before SERVING: ``models`` as given, or every model's latest version."""
        if models:
            return list(models)
        return [summary.name for summary in self.registry.list_models()]

    def load_configured(self, models: Sequence[str] | None) -> list[Any]:
        """Load every configured model (raises on the first that cannot be loaded)."""
        return [self.load(ref, wait=None) for ref in self.configured_refs(models)]

    def refresh(self, models: Sequence[str] | None) -> Any:
        """One hot-reload step: re-read the registry, then load any new latest/alias targets now,
        so the first request for them does not pay the load. Errors of one model are logged, not raised."""
        report = self.registry.refresh()
        if report.error:
            log_event(_log, "registry_refresh_failed", level=logging.WARNING, error=report.error)
        elif report.changed:
            log_event(
                _log,
                "registry_refreshed",
                added=report.added,
                removed=report.removed,
                alias_moves=[str(move) for move in report.alias_moves],
                failed=sorted(report.failed),
                damaged=sorted(report.damaged),
                loading=report.loading,
            )
        for ref in self.configured_refs(models):
            try:
                self.load(ref)
            except Exception as exc:  # keep serving what is loaded; the failure is logged and counted
                log_event(
                    _log, "model_reload_failed", level=logging.WARNING, model=ref, error=f"{type(exc).__name__}: {exc}"
                )
        return report

    def piece_cache_stats(self, name: str, version: int) -> Any:
        """The engine's cache statistics for a loaded version (None if this worker never loaded it)."""
        if (name, version) not in self._loaded:
            return None
        try:
            return self.registry.load(f"{name}@{version}").encoding.piece_cache_stats()
        except Exception:  # removed by a reload since the call: no statistics to report
            return None

    def _record_loaded(self, loaded: Any, seconds: float) -> None:
        manifest = loaded.manifest
        payload_format = PAYLOAD_FORMAT_NAMES.get(manifest.payload_format, manifest.payload_format)
        if self._metrics is not None:
            version = str(loaded.version)
            self._metrics.model_load_seconds.labels(loaded.name, version).observe(seconds)
            self._metrics.model_info.labels(loaded.name, version, payload_format, loaded.manifest_sha256).set(1)
        log_event(
            _log,
            "model_loaded",
            model=loaded.name,
            version=loaded.version,
            payload_format=payload_format,
            sha256=loaded.manifest_sha256,
            n_vocab=loaded.encoding.n_vocab,
            seconds=round(seconds, 4),
        )

