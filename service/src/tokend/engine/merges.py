"""Conversion between minbpe-style merges and tiktoken-style ranks.

merges: `{(left_id, right_id): new_id}` in the order they were learned (minbpe's `self.merges`); ids below
256 are the raw bytes (`id i` is `bytes([i])`) unless `base` says otherwise.
ranks: `{token_bytes: rank}` where rank is the token id and the merge priority.

>>> ranks = merges_to_ranks({(97, 97): 256, (256, 97): 257})
>>> ranks[b"aa"], ranks[b"aaa"], ranks[b"a"]
(256, 257, 97)
>>> ranks_to_merges(ranks)
{(97, 97): 256, (256, 97): 257}

Not handled: vocabularies that are not closed under BPE (a multi-byte token that cannot be produced by
merging two lower-ranked tokens raises `ModelFormatError`).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import ModelFormatError

__all__ = ["merges_to_ranks", "ranks_to_merges"]


def merges_to_ranks(
    merges: Mapping[tuple[int, int], int], *, base: Mapping[int, bytes] | None = None
) -> dict[bytes, int]:
    """Ranks for a merge table: the base tokens (default: the 256 single bytes) then one token per merge."""
    vocab: dict[int, bytes] = dict(base) if base is not None else {i: bytes([i]) for i in range(256)}
    for (left, right), new_id in sorted(merges.items(), key=lambda item: item[1]):
        try:
            vocab[new_id] = vocab[left] + vocab[right]
        except KeyError as exc:
            raise ModelFormatError(
                f"merge ({left}, {right}) -> {new_id} uses id {exc.args[0]} before it is defined; "
                "merges must only combine base ids or ids of earlier merges"
            ) from None
    ranks = {token: token_id for token_id, token in vocab.items()}
    if len(ranks) != len(vocab):
        raise ModelFormatError("two merges produce the same bytes; a merge table must create distinct tokens")
    return ranks


def ranks_to_merges(ranks: Mapping[bytes, int]) -> dict[tuple[int, int], int]:
    """Recover the merge table from ranks: each multi-byte token is the merge of the two parts that BPE
    (restricted to lower ranks) leaves it in — the approach of minbpe's `recover_merges`."""
    merges: dict[tuple[int, int], int] = {}
    for token, rank in sorted(ranks.items(), key=lambda item: item[1]):
        if len(token) == 1:
            continue
        parts = _bpe_below(ranks, token, rank)
        if len(parts) != 2:
            raise ModelFormatError(
                f"token {token!r} (rank {rank}) cannot be built by merging two lower-ranked tokens "
                f"(BPE leaves {len(parts)} parts); the ranks are not a BPE vocabulary"
            )
        merges[(ranks[parts[0]], ranks[parts[1]])] = rank
    return merges


def _bpe_below(ranks: Mapping[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best_index, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_index, best_rank = i, rank
        if best_index < 0:
            break
        parts[best_index : best_index + 2] = [parts[best_index] + parts[best_index + 1]]
    return parts
