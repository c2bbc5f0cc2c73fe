"""Checks that an Encoding's plain data is a usable byte-level BPE vocabulary, with errors naming the problem.

>>> check_vocabulary("toy", {bytes([i]): i for i in range(256)}, {"<|end|>": 256}, None)

Not handled: whether the ranks are closed under BPE (see `merges.ranks_to_merges`); tiktoken does not check
that either, and real vocabularies (cl100k_base) are.
"""

from __future__ import annotations

from ..errors import ModelFormatError

__all__ = ["check_vocabulary"]


def check_vocabulary(name: str, ranks: dict[bytes, int], specials: dict[str, int], explicit_n_vocab: int | None) -> None:
    """Raise `ModelFormatError` unless every byte has a rank, ids are unique, and `explicit_n_vocab` fits."""
    if not ranks:
        raise ModelFormatError(f"encoding {name!r}: mergeable_ranks is empty; a byte-level BPE needs all 256 bytes")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ModelFormatError(
            f"encoding {name!r}: mergeable_ranks lacks {len(missing)} single bytes (first: {bytes([missing[0]])!r}); "
            "byte-level BPE needs a rank for every byte"
        )
    if len(set(ranks.values())) != len(ranks):
        raise ModelFormatError(f"encoding {name!r}: two mergeable tokens share a rank; ranks must be unique ids")
    clash = sorted(set(ranks.values()) & set(specials.values()))
    if clash or len(set(specials.values())) != len(specials):
        raise ModelFormatError(
            f"encoding {name!r}: special token ids must be distinct and unused by mergeable tokens"
            + (f" (id {clash[0]} is both)" if clash else "")
        )
    if explicit_n_vocab:
        max_value = max(max(ranks.values()), max(specials.values(), default=0))
        if len(ranks) + len(specials) != explicit_n_vocab or max_value != explicit_n_vocab - 1:
            raise ModelFormatError(
                f"encoding {name!r}: explicit_n_vocab={explicit_n_vocab} but there are {len(ranks)} mergeable "
                f"+ {len(specials)} special tokens with max id {max_value}"
            )
