"""How many bytes the registry reads or inflates at most, and the bounded readers that hold to it.

Everything a registry hands us may be hostile or damaged: a payload file far larger than its manifest says,
a gzip payload with consistent hashes that inflates to gigabytes, a manifest or index the size of a disk.
Each read stops one byte past what is allowed, so refusing costs at most that many bytes of memory and the
time to read them:

    stored = read_file_at_most(path, manifest.payload.size)   # at most size + 1 bytes come back
    # len(stored) > manifest.payload.size: the file is larger than its manifest says (refused)
    limit = manifest.payload.content_size or MAX_PAYLOAD_BYTES
    content = gunzip_at_most(stored, limit=limit, what="cl100k_base@1")   # ModelFormatError past `limit`

Limits (why these numbers): the largest payload shipped today is o200k_base's rank file, 3.6 MB inflated
(1.7 MB stored); tokenizer files of the big open vocabularies are 10-35 MB. MAX_PAYLOAD_BYTES leaves room for
those and keeps a refused bomb well inside one worker's memory budget (~150 MiB at rest, 1.5 GiB pod limit).
Raise it here if a real model needs more. Not bounded here: what a payload that fits costs to parse (a rank
file of 64 MiB could list ~5 million tokens); the engine refuses sparse ids, nothing yet caps the count.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

from tokend.errors import ModelFormatError

MAX_PAYLOAD_BYTES = 64 * 1024 * 1024  # a payload as stored, and its content once inflated
MAX_MANIFEST_BYTES = 1024 * 1024  # a manifest.json (real ones are ~2 KB)
MAX_INDEX_BYTES = 16 * 1024 * 1024  # an index.json (~200 bytes per version)

_CHUNK_BYTES = 1024 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around a deflate stream


def read_file_at_most(path: Path, limit: int) -> bytes:
    """The first `limit + 1` bytes of `path` at most: a longer result means the file is over the limit.

    Raises OSError as `open` does (the caller names the file in its own error)."""
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        # read(n) allocates n bytes up front: ask for the file's size (+1 to see EOF), not the limit.
        data = file.read(min(size, limit) + 1)
        if size < len(data) <= limit:  # the file grew since fstat: read on, still bounded
            data += file.read(limit + 1 - len(data))
        return data


def gunzip_at_most(data: bytes, *, limit: int, what: str) -> bytes:
    """Inflate gzip `data` (one or more members, as `gzip.decompress`), refusing content over `limit` bytes.

    Memory stays below `limit` + one chunk, whatever the compression ratio; a bomb is refused after
    inflating `limit + 1` bytes. Raises `ModelFormatError` naming `what`.

        >>> import gzip
        >>> gunzip_at_most(gzip.compress(b"x" * 10), limit=10, what="t@1")
        b'xxxxxxxxxx'
        >>> gunzip_at_most(gzip.compress(b"x" * 10_000_000), limit=1_000_000, what="t@1")   # 10 KB stored
        Traceback (most recent call last):
        tokend.errors.ModelFormatError: payload of t@1 inflates to more than 1,000,000 bytes; refusing it ...
    """
    parts: list[bytes] = []
    total = 0
    remaining = data
    while True:
        inflater = zlib.decompressobj(_GZIP_WBITS)
        pending = remaining
        try:
            while not inflater.eof:
                # max_length > 0 always (0 would mean "no limit"): total <= limit here.
                chunk = inflater.decompress(pending, min(_CHUNK_BYTES, limit + 1 - total))
                stalled = not chunk and inflater.unconsumed_tail == pending
                pending = inflater.unconsumed_tail
                total += len(chunk)
                if total > limit:
                    raise ModelFormatError(
                        f"payload of {what} inflates to more than {limit:,} bytes; refusing it (a gzip bomb, or the "
                        "manifest's content_size or tokend's MAX_PAYLOAD_BYTES is too small for it)"
                    )
                parts.append(chunk)
                if stalled:  # input used up (or no progress) before the end of the stream
                    raise ModelFormatError(f"payload of {what} is not valid gzip data: the stream is truncated")
        except zlib.error as error:
            raise ModelFormatError(f"payload of {what} is not valid gzip data: {error}") from None
        remaining = inflater.unused_data
        if not remaining:
            return b"".join(parts)
