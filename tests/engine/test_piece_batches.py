"""The loop over a text's pieces takes them PIECE_BATCH (64) at a time (native/piece_batch.h): found, looked up, then
handed out in order. A batch may end anywhere: inside one of the scanner's 64-byte windows of ASCII text,
between a short piece found in its home slot and one that is merged or a long one that takes the rank table.

    >>> core = BpeCore(ranks, "cl100k", short_table_after=0)
    >>> core.encode(text) == tiktoken.get_encoding("cl100k_base").encode_ordinary(text)   # for any text
    True

Held to tiktoken at every batch boundary (texts of 1 to 3 batches and 2 pieces, of every kind), with the windows shifted
byte by byte, with and without the short-piece table, on first passes (merged, added) and later ones (found),
one text at a time and in batches on threads (which add to the table too).
"""

from __future__ import annotations

import random

import pytest

from tests.engine._encodings import ours
from tokend.engine._native import PIECE_BATCH, BpeCore

_NATIVE = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_BATCH = PIECE_BATCH
_MOST = 3 * _BATCH + 2  # texts of up to this many pieces: every batch boundary up to the third, and beside it

# One of each way a piece takes through the loop: a token of <= 15 bytes (found in the short table), a short
# piece that is no token (merged, then added and found), a long token, a long piece that is none (rank table,
# piece cache), numbers, punctuation, newlines, CJK (multi-byte, long).
_KINDS = [
    " the",
    " and",
    " xqzjv",
    " bvwkq",
    " internationalization",
    " supercalifragilisticexpialidocious",
    " 123",
    " 4567",
    "!!",
    "...\n",
    "\n\n",
    " 中文字典中文字典",
    " naïve",
    "'s",
    "       ",
]


def _core(name: str, after: int) -> BpeCore:
    return BpeCore(dict(ours(name)._mergeable_ranks), _NATIVE[name], short_table_after=after)


def _texts(core: BpeCore, seed: int) -> list[str]:
    """For n = 1.._MOST a text of exactly n pieces (by the core's split, which the split tests hold to tiktoken's
    regex), of kinds in random order."""
    rng, texts = random.Random(seed), []
    for n in range(1, _MOST + 1):
        while True:
            text = ""
            while len(core.split(text)) < n:
                text += rng.choice(_KINDS)
            if len(core.split(text)) == n:
                texts.append(text)
                break
    return texts


@pytest.mark.parametrize("after", [0, -1], ids=["with-table", "without-table"])
def test_every_batch_boundary_matches_tiktoken(encoding_name, oracle, after):
    core = _core(encoding_name, after)
    texts = _texts(core, 1)
    assert [len(core.split(t)) for t in texts] == list(range(1, _MOST + 1))
    for rounds in range(2):  # the first pass merges and adds, the second finds
        for text in texts:
            expected = oracle.encode_ordinary(text)
            assert core.encode(text) == expected, (rounds, text)
            assert core.count(text) == len(expected), (rounds, text)
    assert core.short_table_stats()["state"] == ("ready" if after == 0 else "none")
    if after == 0:
        assert core.short_table_stats()["added"] > 0


def test_batches_on_threads_read_the_table_and_match_tiktoken(encoding_name, oracle):
    core = _core(encoding_name, 0)
    texts = _texts(core, 2)
    core.count(texts[-1])  # builds the table and adds this text's merged pieces
    expected = [oracle.encode_ordinary(t) for t in texts]
    assert core.encode_batch(texts, 2) == expected
    assert core.encode_batch(texts, 2, count=True) == [len(ids) for ids in expected]


def test_batches_ending_inside_the_scanners_ascii_windows(encoding_name, oracle):
    """ASCII prose: pieces come from 64-byte windows by masks; a batch fills up in the middle of one and the
    next batch takes the rest of that window first. Shifting the text a byte at a time moves every window."""
    rng = random.Random(3)
    words = ["a", "of", "the", "word", "quick", "brown", "xqzjv", "internationalization", "42", "1999", ",", "."]
    prose = " ".join(rng.choice(words) for _ in range(400)) + "\n"
    core = _core(encoding_name, 0)
    for shift in range(70):
        text = "x" * shift + prose
        expected = oracle.encode_ordinary(text)
        assert core.encode(text) == expected, shift
        assert core.count(text) == len(expected), shift


def test_merged_pieces_found_count_as_cache_hits_once_each(cl100k):
    core = _core("cl100k_base", 0)
    core.count(" xqzjv")  # builds the table, merges and adds the piece
    hits_before = core.cache_stats()[0]
    n = 2 * _BATCH + 8  # pieces over three batches, each found in the table
    text = " xqzjv" * n
    assert core.count(text) == n * len(cl100k.encode_ordinary(" xqzjv"))  # held to tiktoken above
    assert core.cache_stats()[0] - hits_before == n
