"""tiktoken's rank-file format: one `base64(token_bytes) rank` line per mergeable token.

>>> data = dump_tiktoken_ranks({b"a": 0, b"b": 1, b"ab": 2})
>>> data
b'YQ== 0\\nYg== 1\\nYWI= 2\\n'
>>> load_tiktoken_ranks(data) == {b"a": 0, b"b": 1, b"ab": 2}
True

Scope: parsing and writing bytes handed to us, with an optional SHA-256 check of the raw bytes. Not handled:
reading files or URLs, caching (the registry does I/O), gzip (decompress before calling).

Files in the canonical form (every published one) are parsed by the native core (`parse_canonical_ranks`,
service/native/rank_file.c: cl100k_base in ~10 ms instead of ~100 ms, most of a cold start), a slice of
lines per call so that a server worker loading a model while it serves lets its other calls run between
slices; any other file by the Python loop below, which is the spec and names the line it refuses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from ..errors import ChecksumMismatchError, ModelFormatError
from ._native import parse_canonical_rank_lines

__all__ = ["load_tiktoken_ranks", "dump_tiktoken_ranks", "parse_canonical_ranks"]

# Lines per native call (~1 ms of the GIL): one call over o200k_base's 200,000 lines held it ~46 ms. What is
# left is the dict's own resizes as it grows, each one step (the last, at 100,000-200,000 entries, 4-9 ms).
_LINES_PER_CALL = 4096


def load_tiktoken_ranks(
    data: bytes, *, expected_sha256: str | None = None, what: str = "tiktoken rank file"
) -> dict[bytes, int]:
    """Parse a rank file into `{token_bytes: rank}`, verifying `expected_sha256` (hex) first when given.

    Raises `ChecksumMismatchError` when the hash differs and `ModelFormatError` naming the line that does
    not parse (bad base64, missing rank, a token or rank listed twice).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"load_tiktoken_ranks expects the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.lower():
            raise ChecksumMismatchError(expected=expected_sha256.lower(), actual=actual, what=what)
    ranks = parse_canonical_ranks(data)
    if ranks is not None:
        return ranks
    return _parse_ranks(data, what)


def parse_canonical_ranks(data: bytes) -> dict[bytes, int] | None:
    """The ranks of a file in the canonical form (rank_file.c), or None when it is not (the Python loop
    decides, with its errors).

        >>> parse_canonical_ranks(b"YQ== 0\\nYg== 1\\n"), parse_canonical_ranks(b"YQ==  0\\n")
        ({b'a': 0, b'b': 1}, None)
    """
    ranks: dict[bytes, int] = {}
    # Rank -> given yet. A line has at least 6 bytes ("YQ== 0"), so a file numbering its tokens 0..n-1 (every
    # real one) fits; a rank past it sends the file to the Python loop.
    seen = bytearray(len(data) // 4 + 256)
    offset = 0
    while offset < len(data):
        offset = parse_canonical_rank_lines(data, offset, _LINES_PER_CALL, ranks, seen)
        if offset < 0:
            return None
    return ranks


def _parse_ranks(data: bytes, what: str) -> dict[bytes, int]:
    """The rank-file format, line by line (the spec of the native fast path)."""
    ranks: dict[bytes, int] = {}
    seen_ranks: set[int] = set()
    b64decode = base64.b64decode
    for line_number, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        fields = line.split()
        try:
            if len(fields) != 2:
                raise ValueError(f"expected 2 fields, found {len(fields)}")
            token = b64decode(fields[0], validate=True)
            rank = int(fields[1])
        except (ValueError, binascii.Error) as exc:
            raise ModelFormatError(
                f"{what}, line {line_number}: {line[:80]!r} is not `base64(token) rank` ({exc})"
            ) from None
        if rank < 0:
            raise ModelFormatError(f"{what}, line {line_number}: rank {rank} is negative")
        if token in ranks or rank in seen_ranks:
            raise ModelFormatError(
                f"{what}, line {line_number}: token {token!r} or rank {rank} appears more than once"
            )
        ranks[token] = rank
        seen_ranks.add(rank)
    return ranks


def dump_tiktoken_ranks(ranks: Mapping[bytes, int]) -> bytes:
    """Write `{token_bytes: rank}` in tiktoken's format, ordered by rank (what tiktoken's files do)."""
    encode = base64.b64encode
    lines = [encode(token) + b" " + str(rank).encode() for token, rank in sorted(ranks.items(), key=lambda kv: kv[1])]
    return b"\n".join(lines) + (b"\n" if lines else b"")
