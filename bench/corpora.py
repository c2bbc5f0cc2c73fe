"""The benchmark texts: tests/corpus.py per kind, split by a hash into warm-up text and measurement parts.

    corpora = measurement_corpora(4_000_000)
    warm, parts = corpora["english"]          # parts["encode"], parts["count"]: disjoint, unseen by warm-up

A document goes to the measurement set when the CRC-32 of its bytes is divisible by 3 (a third of the
text), alternately to the encode and the count part; the rest is warm-up. The split depends only on the
text, so every peer and every round sees the same parts. Documents holding special-token syntax
(`exclude`, default `<|`) are left out: `encode` would (rightly) refuse them.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["KINDS", "measurement_corpora"]

KINDS = ("english", "code", "multilingual")


def measurement_corpora(
    limit_bytes: int, *, kinds: Sequence[str] = KINDS, exclude: Sequence[str] = ("<|",)
) -> dict[str, tuple[list[str], dict[str, list[str]]]]:
    from tests.corpus import corpus_texts

    corpora = {}
    for kind in kinds:
        documents = [doc for doc in corpus_texts(limit_bytes=limit_bytes, kinds=(kind,))
                     if not any(marker in doc for marker in exclude)]
        warm, measure = [], []
        for document in documents:
            (measure if zlib.crc32(document.encode("utf-8", "replace")) % 3 == 0 else warm).append(document)
        corpora[kind] = (warm, {"encode": measure[0::2], "count": measure[1::2]})
    return corpora
