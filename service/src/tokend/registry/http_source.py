"""A read-only registry over HTTP(S): the directory layout served by any static file server.

The server needs nothing but GET on files: `BASE/index.json` (the catalog, which a directory registry
keeps current; see `DirectorySource.write_index`), `BASE/NAME/VERSION/manifest.json` and the payload file
next to it (or, for a version sharing another's payload, in that version's directory). Everything is checked
before it is used or cached:

- a manifest's SHA-256 must equal the one the index lists for that version;
- a payload's SHA-256 (and decompressed SHA-256) must equal the manifest's.

Verified files are kept in `cache_dir/NAME/VERSION/` (each written atomically), so a version is downloaded
once per machine; cached files are re-checked against the same hashes every time they are read.

    >>> source = HttpSource("http://127.0.0.1:8000/models/", cache_dir=Path("/var/cache/tokend"))
    >>> source.scan().entries.keys()

Not handled: authentication, directory listings (the index is required), writing (publish into a local
directory and sync it to the web server or bucket).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tokend.errors import ChecksumMismatchError, RegistryError
from tokend.registry.atomic_files import sha256_hex, write_atomic
from tokend.registry.catalog import Catalog
from tokend.registry.directory_source import INDEX_FILE, MANIFEST_FILE
from tokend.registry.manifest import Manifest
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import verify_payload
from tokend.registry.source import Source

logger = logging.getLogger(__name__)

# Guards against a misconfigured URL streaming something endless into memory (o200k's gz is ~2 MB).
MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
DEFAULT_TIMEOUT_SECONDS = 30.0


def default_cache_dir(base_url: str) -> Path:
    """`$XDG_CACHE_HOME/tokend/http/<hash of the URL>` (so two registries never share files)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "tokend" / "http" / hashlib.sha256(base_url.encode()).hexdigest()[:16]


class HttpSource(Source):
    """Read-only source at `base_url` (http or https), caching verified files under `cache_dir`."""

    writable = False

    def __init__(self, base_url: str, *, cache_dir: Path | str | None = None, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryError(f"registry URL {base_url!r} must be http:// or https:// with a host")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.location = self.base_url
        self.timeout = timeout
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.base_url)
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def _fetch(self, relative: str) -> bytes:
        url = urllib.parse.urljoin(self.base_url, relative)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:  # noqa: S310 (scheme checked)
                data = response.read(MAX_DOWNLOAD_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise RegistryError(f"GET {url} failed: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"cannot reach the registry at {url}: {reason}") from None
        if len(data) > MAX_DOWNLOAD_BYTES:
            raise RegistryError(f"GET {url}: response is larger than {MAX_DOWNLOAD_BYTES} bytes; refusing it")
        return data

    def scan(self) -> Catalog:
        catalog = Catalog.from_index_bytes(self._fetch(INDEX_FILE), where=self.base_url + INDEX_FILE)
        with self._lock:
            self._catalog = catalog
        return catalog

    def expected_manifest_sha256(self, ref: ModelVersionRef) -> str | None:
        return self._expected_manifest_sha256(ref)

    def _expected_manifest_sha256(self, ref: ModelVersionRef) -> str:
        with self._lock:
            catalog = self._catalog
        if catalog is None:
            catalog = self.scan()
        entry = catalog.entries.get(ref.name)
        digest = entry.versions.get(ref.version) if entry is not None else None
        if digest is None:
            raise RegistryError(
                f"{self.base_url}{INDEX_FILE} lists no manifest_sha256 for {ref}; regenerate the index "
                "(`tokend registry index DIR`) before serving the directory"
            )
        return digest

    def _cache_path(self, ref: ModelVersionRef) -> Path:
        return self.cache_dir / ref.name / str(ref.version)

    def read_manifest(self, ref: ModelVersionRef) -> bytes:
        expected = self._expected_manifest_sha256(ref)
        cached = self._cache_path(ref) / MANIFEST_FILE
        with contextlib.suppress(OSError):
            data = cached.read_bytes()
            if sha256_hex(data) == expected:
                return data
        data = self._fetch(f"{ref.name}/{ref.version}/{MANIFEST_FILE}")
        actual = sha256_hex(data)
        if actual != expected:
            raise ChecksumMismatchError(
                expected=expected, actual=actual, what=f"manifest of {ref} at {self.base_url} (per {INDEX_FILE})"
            )
        self._store(cached, data)
        return data

    def read_payload(self, manifest: Manifest) -> bytes:
        # A shared payload file lives (and is cached) in the directory of the version that owns it.
        ref = ModelVersionRef(*manifest.payload.owner(manifest.name, manifest.version))
        version_dir = self._cache_path(ref)
        with contextlib.suppress(OSError):
            stored = (version_dir / manifest.payload.path).read_bytes()
            if sha256_hex(stored) == manifest.payload.sha256:
                return stored
        stored = self._fetch(f"{ref.name}/{ref.version}/{manifest.payload.path}")
        verify_payload(manifest, stored)  # raises ChecksumMismatchError: nothing unverified is cached
        self._store(version_dir / manifest.payload.path, stored)
        return stored

    def _store(self, path: Path, data: bytes) -> None:
        """Cache one verified file (atomic write: a half-written cache file never exists)."""
        try:
            write_atomic(path, data)
        except OSError as error:
            # The cache is an optimisation: a read-only or full disk must not stop serving.
            logger.warning("cannot cache %s: %s", path, error)
