"""BytePositions (tokend/service/budget_sizes.py): character -> byte positions for the spans of chunks and
truncations, exact against the UTF-8 of the text's prefix, at a cost of about one pass over the text even when
positions go back a little each time (overlapping chunks: each start before the previous end)."""

from __future__ import annotations

import random

import pytest

from tokend.service import budget_sizes
from tokend.service.budget_sizes import BytePositions


@pytest.mark.parametrize("text", ["plain ascii " * 50, "héllo wörld 中文的句子 😀 " * 40, "\ud800 lone \udfff " * 30],
                         ids=["ascii", "multilingual", "lone-surrogates"])
def test_positions_forward_and_back_are_the_utf8_length_of_the_prefix(text):
    rng = random.Random(len(text))
    positions = BytePositions(text)
    for position in [0, len(text), 0, *(rng.randrange(len(text) + 1) for _ in range(300)), len(text)]:
        assert positions(position) == len(budget_sizes.utf8_of(text[:position])), position


def test_overlapping_chunk_spans_cost_one_pass_not_one_per_chunk(monkeypatch):
    # 20,000 characters in chunks of 40 with 10 of overlap: restarting from 0 for every start behind the
    # previous end encoded ~5,000,000 characters; stepping back and forth encodes ~2 × the text.
    text = "中文的句子 and words, ñ, 😀. " * 800
    encoded = []

    def counting_utf8_of(piece: str) -> bytes:
        encoded.append(len(piece))
        return piece.encode("utf-8")

    monkeypatch.setattr(budget_sizes, "utf8_of", counting_utf8_of)
    positions = BytePositions(text)
    spans = [(start, min(start + 40, len(text))) for start in range(0, len(text), 30)]
    found = [(positions(start), positions(end)) for start, end in spans]
    assert found[-1][1] == len(text.encode("utf-8")) and found[1][0] == len(text[:30].encode("utf-8"))
    assert sum(encoded) <= 3 * len(text), sum(encoded)
