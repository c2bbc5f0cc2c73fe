"""A read-only registry over HTTP(S): the directory layout served by any static file server.

The server needs nothing but GET on files: `BASE/index.json` (the catalog, which a directory registry
keeps current; see `DirectorySource.write_index`), `BASE/NAME/VERSION/manifest.json` and the payload file
next to it (or, for a version sharing another's payload, in that version's directory). Everything is checked
before it is used or cached:

- a manifest's SHA-256 must equal the one the index lists for that version;
- a payload's size and SHA-256 must equal the manifest's (the registry checks the content after that).

Every GET is bounded in bytes and time: it reads at most one byte more than allowed (the manifest's payload
size; size_limits for manifests and the index) and gives up at its deadline (the registry's load deadline,
or `load_timeout` seconds for an index), checked between reads; one read waits at most `timeout` seconds.
So a server that trickles a payload costs one loader thread until the deadline, never a stuck process.

Verified files are kept in `cache_dir/NAME/VERSION/` (each written atomically), so a version is downloaded
once per machine; cached files are re-checked against the same hashes every time they are read.

    source = HttpSource("http://127.0.0.1:8000/models/", cache_dir=Path("/var/cache/tokend"))
    source.scan().entries.keys()    # the model names BASE/index.json lists: 'cl100k_base', 'mymodel', ...

Not handled: authentication, directory listings (the index is required), writing (publish into a local
directory and sync it to the web server or bucket).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tokend.errors import ChecksumMismatchError, ModelFormatError, RegistryError
from tokend.registry.atomic_files import sha256_hex, write_atomic
from tokend.registry.catalog import Catalog
from tokend.registry.directory_source import INDEX_FILE, MANIFEST_FILE
from tokend.registry.manifest import Manifest
from tokend.registry.model_ref import ModelVersionRef
from tokend.registry.payload import check_stored_payload, stored_read_limit
from tokend.registry.size_limits import MAX_INDEX_BYTES, MAX_MANIFEST_BYTES, read_file_at_most
from tokend.registry.source import Source

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0  # one read (connect, or the next bytes of a response)
DEFAULT_LOAD_TIMEOUT_SECONDS = 60.0  # a whole GET when the caller gives no deadline (the index)
_READ_CHUNK_BYTES = 256 * 1024


def default_cache_dir(base_url: str) -> Path:
    """`$XDG_CACHE_HOME/tokend/http/<hash of the URL>` (so two registries never share files)."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "tokend" / "http" / hashlib.sha256(base_url.encode()).hexdigest()[:16]


class HttpSource(Source):
    """Read-only source at `base_url` (http or https), caching verified files under `cache_dir`."""

    writable = False

    def __init__(
        self,
        base_url: str,
        *,
        cache_dir: Path | str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        load_timeout: float = DEFAULT_LOAD_TIMEOUT_SECONDS,
    ):
        try:
            parsed = urllib.parse.urlsplit(base_url)
        except ValueError as error:  # e.g. "http://[::1": Invalid IPv6 URL
            raise RegistryError(f"registry URL {base_url[:200]!r} does not parse: {error}") from None
        odd = next((char for char in base_url if not " " < char < "\x7f"), None)
        if odd is not None:  # a byte argv could not decode (a surrogate), a space, a control or non-ASCII character
            raise RegistryError(f"registry URL {base_url[:200]!r} has the character {odd!r}: a URL is printable ASCII "
                                "(percent-encode the path, punycode the host)")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise RegistryError(f"registry URL {base_url!r} must be http:// or https:// with a host")
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.location = self.base_url
        self.timeout = timeout
        self.load_timeout = load_timeout
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.base_url)
        self._catalog: Catalog | None = None
        self._lock = threading.Lock()

    def _fetch(self, relative: str, *, limit: int, deadline: float | None = None) -> bytes:
        """The body of GET `relative`, at most `limit + 1` bytes (more than `limit`: the caller refuses it).
        RegistryError when the server fails, is unreachable, or has not sent it all by `deadline`."""
        url = urllib.parse.urljoin(self.base_url, relative)
        started = time.monotonic()
        if deadline is None:
            deadline = started + self.load_timeout
        chunks: list[bytes] = []
        received = 0
        try:
            # The socket timeout bounds each read; the deadline, checked between reads, bounds the whole.
            timeout = max(0.001, min(self.timeout, deadline - started))
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked)
                while received <= limit:
                    if time.monotonic() > deadline:
                        raise RegistryError(
                            f"GET {url} was still receiving when the load's deadline passed ({received:,} bytes in "
                            f"{time.monotonic() - started:.1f} s): the registry is too slow or stalled; tried again later"
                        )
                    chunk = response.read1(min(_READ_CHUNK_BYTES, limit + 1 - received))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    received += len(chunk)
        except urllib.error.HTTPError as error:
            raise RegistryError(f"GET {url} failed: HTTP {error.code} {error.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", None) or error
            raise RegistryError(f"cannot reach the registry at {url}: {type(error).__name__}: {reason}") from None
        return b"".join(chunks)

    def scan(self) -> Catalog:
        data = self._fetch(INDEX_FILE, limit=MAX_INDEX_BYTES)
        if len(data) > MAX_INDEX_BYTES:
            raise RegistryError(f"{self.base_url}{INDEX_FILE} is larger than {MAX_INDEX_BYTES:,} bytes; refusing it")
        catalog = Catalog.from_index_bytes(data, where=self.base_url + INDEX_FILE)
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

    def read_manifest(self, ref: ModelVersionRef, *, deadline: float | None = None) -> bytes:
        expected = self._expected_manifest_sha256(ref)
        cached = self._cache_path(ref) / MANIFEST_FILE
        with contextlib.suppress(OSError):
            data = read_file_at_most(cached, MAX_MANIFEST_BYTES)
            if sha256_hex(data) == expected:
                return data
        data = self._fetch(f"{ref.name}/{ref.version}/{MANIFEST_FILE}", limit=MAX_MANIFEST_BYTES, deadline=deadline)
        if len(data) > MAX_MANIFEST_BYTES:
            raise ModelFormatError(f"the manifest of {ref} at {self.base_url} is larger than {MAX_MANIFEST_BYTES:,} bytes")
        actual = sha256_hex(data)
        if actual != expected:
            raise ChecksumMismatchError(
                expected=expected, actual=actual, what=f"manifest of {ref} at {self.base_url} (per {INDEX_FILE})"
            )
        self._store(cached, data)
        return data

    def read_payload(self, manifest: Manifest, *, deadline: float | None = None) -> bytes:
        # A shared payload file lives (and is cached) in the directory of the version that owns it.
        ref = ModelVersionRef(*manifest.payload.owner(manifest.name, manifest.version))
        version_dir = self._cache_path(ref)
        limit = stored_read_limit(manifest)
        with contextlib.suppress(OSError):
            stored = read_file_at_most(version_dir / manifest.payload.path, limit)
            if len(stored) == manifest.payload.size and sha256_hex(stored) == manifest.payload.sha256:
                return stored
        stored = self._fetch(f"{ref.name}/{ref.version}/{manifest.payload.path}", limit=limit, deadline=deadline)
        check_stored_payload(manifest, stored)  # raises ChecksumMismatchError: nothing unverified is cached
        self._store(version_dir / manifest.payload.path, stored)
        return stored

    def _store(self, path: Path, data: bytes) -> None:
        """Cache one verified file (atomic write: a half-written cache file never exists)."""
        try:
            write_atomic(path, data)
        except OSError as error:
            # The cache is an optimisation: a read-only or full disk must not stop serving.
            logger.warning("cannot cache %s: %s", path, error)
