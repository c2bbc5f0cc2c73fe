"""Failed loads, remembered so a bad version costs one attempt instead of one per request or per reload,
and forgotten as soon as the version may have been fixed.

How long a failure is remembered depends on what it follows from:

| kind        | examples                                                   | tried again                          |
|-------------|------------------------------------------------------------|--------------------------------------|
| `content`   | gzip bomb, payload over the limits, unparseable manifest or | when the manifest's digest changes   |
|             | payload, decompressed hash wrong, n_vocab disagrees         | (checked at each refresh)            |
| `stored`    | payload bytes differ from the manifest (flipped, truncated, | after the next refresh               |
|             | oversized), manifest differs from the index, broken index   |                                      |
| `transient` | registry unreachable, too slow (deadline), I/O error        | after the next refresh, or after     |
|             |                                                            | `retry_transient_after` seconds      |

A `content` failure is a function of the manifest alone: the manifest pins the payload's SHA-256, and
everything after that check (inflating, hashing, parsing) is deterministic. So a gzip bomb with consistent
hashes is inflated once per process, not once per reload, until someone publishes a different manifest.

    >>> from tokend.errors import ModelFormatError
    >>> vref, error = ModelVersionRef("m", 2), ModelFormatError("payload of m@2 inflates to more than 64 MiB")
    >>> failures = LoadFailures()
    >>> _ = failures.remember(vref, error, kind="content", manifest_sha256="3f1a…")
    >>> failures.get(vref).error
    ModelFormatError('payload of m@2 inflates to more than 64 MiB')
    >>> failures.after_refresh(present={vref}, manifest_digest=lambda v: "3f1a…")   # the same manifest
    >>> failures.get(vref).kind
    'content'
    >>> failures.after_refresh(present={vref}, manifest_digest=lambda v: "9c07…")   # a new one may fix it
    >>> failures.get(vref) is None
    True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from tokend.errors import TokendError
from tokend.registry.model_ref import ModelVersionRef

FailureKind = Literal["content", "stored", "transient"]
DEFAULT_RETRY_TRANSIENT_SECONDS = 10.0


@dataclass(frozen=True)
class LoadFailure:
    error: TokendError
    kind: FailureKind
    manifest_sha256: str | None  # of the manifest the failure follows from (content failures)
    at: float  # time.monotonic() when it failed


class LoadFailures:
    """Thread-safe map ModelVersionRef -> LoadFailure with the expiry rules above."""

    def __init__(self, *, retry_transient_after: float = DEFAULT_RETRY_TRANSIENT_SECONDS) -> None:
        self._lock = threading.Lock()
        self._failures: dict[ModelVersionRef, LoadFailure] = {}
        self.retry_transient_after = retry_transient_after

    def remember(
        self, vref: ModelVersionRef, error: TokendError, *, kind: FailureKind, manifest_sha256: str | None = None
    ) -> LoadFailure:
        failure = LoadFailure(error, kind, manifest_sha256, time.monotonic())
        with self._lock:
            self._failures[vref] = failure
        return failure

    def get(self, vref: ModelVersionRef) -> LoadFailure | None:
        """The failure still in force for `vref` (None: never failed, or it may be tried again)."""
        if vref not in self._failures:  # the common case, on every request: no lock
            return None
        with self._lock:
            failure = self._failures.get(vref)
            if (
                failure is not None
                and failure.kind == "transient"
                and time.monotonic() - failure.at >= self.retry_transient_after
            ):
                del self._failures[vref]
                return None
            return failure

    def forget(self, vref: ModelVersionRef) -> None:
        with self._lock:
            self._failures.pop(vref, None)

    def after_refresh(
        self, *, present: Collection[ModelVersionRef], manifest_digest: Callable[[ModelVersionRef], str | None]
    ) -> None:
        """Forget what a refresh may have fixed: every `stored` and `transient` failure, `content` failures
        of versions gone from the source or whose manifest digest changed. `manifest_digest(vref)` reads
        the current digest (None or an exception: unknown, so the failure stays)."""
        started = time.monotonic()
        with self._lock:
            content = {vref: failure for vref, failure in self._failures.items() if failure.kind == "content"}
        keep: dict[ModelVersionRef, LoadFailure] = {}
        for vref, failure in content.items():
            if vref not in present:
                continue
            try:
                digest = manifest_digest(vref)
            except Exception:  # noqa: BLE001 - unreadable now: the failure stays until it can be read
                digest = None
            if digest is None or digest == failure.manifest_sha256:
                keep[vref] = failure
        with self._lock:
            # Failures recorded while digests were being read (by loads running meanwhile) are kept too.
            fresh = {vref: failure for vref, failure in self._failures.items() if failure.at >= started}
            self._failures = {**keep, **fresh}
