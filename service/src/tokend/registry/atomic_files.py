"""Atomic file writes and the inter-process lock of a directory registry.

Readers never see a half-written file: every write goes to a temporary file in the same directory, is
fsynced and then renamed over the target (rename is atomic on POSIX file systems). Read-modify-write
updates (aliases, index) take an exclusive `flock` on the registry's lock file, so concurrent processes
serialise instead of losing each other's updates.

    write_atomic(root / "mymodel" / "aliases.json", data)   # readers see the old file or the new one
    with registry_lock(root):                               # one writer at a time, across processes
        ...                                                 # read aliases.json, change it, write_atomic it

Not handled: network file systems without working `flock`/`rename` semantics (NFSv3 and older).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

# Staging area inside a directory registry: same file system as the models, so rename() is atomic.
STAGING_DIR = ".staging"
LOCK_FILE = "lock"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically (temp file in the same directory, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def registry_lock(root: Path) -> Iterator[None]:
    """Hold the registry-wide exclusive lock (blocks until free). Released when the block exits."""
    staging = root / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    with open(staging / LOCK_FILE, "a+b") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
