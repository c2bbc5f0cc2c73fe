"""Other split patterns over real ranks, against tiktoken built the same way: the GPT-2 pattern (split by
the native scanner, like cl100k/o200k), patterns the native core does not know (split by the `regex`
module, merged by the core), and a disabled cache."""

from __future__ import annotations

import pytest
import tiktoken

from tests.corpus import corpus_texts, edge_cases
from tokend.engine import GPT2_PATTERN, Encoding

_TEXTS = corpus_texts(limit_bytes=40_000) + ["a  b\n  c ", "x\n\n  \t y  ", "   "]


@pytest.mark.parametrize(
    "pattern, capacity",
    [(GPT2_PATTERN, 65_536), (r"\S+|\s+", 65_536), (r"\w+|[^\w\s]+|\s+(?!\S)|\s+", 65_536), (GPT2_PATTERN, 0)],
    ids=["gpt2", "non-whitespace-runs", "words", "gpt2-no-cache"],
)
def test_pattern_matches_tiktoken(oracle, pattern, capacity):
    theirs = tiktoken.Encoding("custom", pat_str=pattern, mergeable_ranks=oracle._mergeable_ranks, special_tokens={})
    ours = Encoding("custom", pat_str=pattern, mergeable_ranks=oracle._mergeable_ranks, special_tokens={}, piece_cache_capacity=capacity)
    for text in _TEXTS + edge_cases():
        expected = theirs.encode_ordinary(text)
        assert ours.encode_ordinary(text) == expected, text[:100]
        assert ours.count_ordinary(text) == len(expected)
