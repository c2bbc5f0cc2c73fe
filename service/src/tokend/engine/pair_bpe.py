"""The pair-priority merge rule of one piece, in Python: the readable reference the native core
(service/native/pair_merge.c) is held to, and the rule of Hugging Face `tokenizers`' BPE, GPT-2's
encoder.py and llama.cpp.

Start from the ids of the piece's single bytes (a byte without one is dropped, as Hugging Face's BPE drops
a character it cannot find when there is no unk token); repeatedly merge the adjacent pair with the lowest
priority in the merge list, the leftmost on ties; stop when no adjacent pair is in the list.

>>> merges = {(97, 98): (0, 300), (300, 99): (1, 301), (98, 99): (2, 302)}   # (left, right) -> (priority, merged)
>>> pair_byte_pair_encode(b"abc", {byte: byte for byte in range(256)}, merges)
[301]
>>> pair_byte_pair_encode(b"xbc", {byte: byte for byte in range(256)}, merges)
[120, 302]

O(n^2) per piece: a specification, not a hot path.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["pair_byte_pair_encode"]


def pair_byte_pair_encode(
    piece: bytes, byte_ids: Mapping[int, int], merges: Mapping[tuple[int, int], tuple[int, int]]
) -> list[int]:
    """Ids of `piece`; `byte_ids`: byte -> id; `merges`: (left id, right id) -> (priority, merged id)."""
    ids = [byte_ids[byte] for byte in piece if byte in byte_ids]
    while len(ids) > 1:
        candidates = [(merges[pair][0], at) for at, pair in enumerate(zip(ids, ids[1:])) if pair in merges]
        if not candidates:
            break
        _, at = min(candidates)
        ids[at : at + 2] = [merges[ids[at], ids[at + 1]][1]]
    return ids
