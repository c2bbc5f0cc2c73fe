"""Hostile input costs bounded time: single pieces of up to 1 MB without whitespace.

The heap merge is checked against tiktoken on 100 kB pieces (same ids), and against a bound on 1 MB
pieces (a naive merge loop takes minutes there). Bounds are generous guards, not performance targets.
"""

from __future__ import annotations

import base64
import random
import string
import threading
import time

import pytest

from tokend.engine import byte_pair_encode

ONE_MB = 1_000_000
GUARD_SECONDS = 60


def _pieces(size: int) -> dict[str, str]:
    rng = random.Random(1234)
    return {
        "a-run": "a" * size,
        "random-letters": "".join(rng.choices(string.ascii_letters, k=size)),
        "base64": base64.b64encode(rng.randbytes(size * 3 // 4)).decode()[:size],
        "cjk": "".join(rng.choices("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生", k=size // 3)),
    }


@pytest.mark.parametrize("kind", ["a-run", "random-letters", "base64", "cjk"])
def test_100kb_piece_matches_tiktoken(enc, oracle, kind):
    text = _pieces(100_000)[kind]
    assert enc.encode_ordinary(text) == oracle.encode_ordinary(text)


@pytest.mark.parametrize("kind", ["a-run", "random-letters", "base64"])
def test_1mb_piece_within_guard(cl100k, kind):
    text = _pieces(ONE_MB)[kind]
    started = time.monotonic()
    ids = cl100k.encode_ordinary(text)
    elapsed = time.monotonic() - started
    assert elapsed < GUARD_SECONDS, f"{kind}: {elapsed:.1f}s for 1 MB"
    assert cl100k.decode(ids) == text


def test_long_pieces_are_not_cached(cl100k):
    before = cl100k.piece_cache_stats().size
    cl100k.encode_ordinary("q" * 5000)
    assert cl100k.piece_cache_stats().size == before


def test_single_piece_merge_matches_tiktoken(oracle):
    # byte_pair_encode alone (no pre-split, no cache) against tiktoken's, over a range of lengths.
    ranks = oracle._mergeable_ranks
    rng = random.Random(7)
    for size in (2, 3, 8, 17, 64, 255, 600, 5000):
        piece = "".join(rng.choices("abcdefgh xyz", k=size)).encode()
        assert byte_pair_encode(piece, ranks) == oracle._encode_single_piece(piece)


@pytest.mark.parametrize(
    "text",
    [
        "A" * 200_000,  # o200k's first alternative backtracks over an uppercase run
        " " * 200_000 + "x",
        "\n" * 100_000 + " " * 100_000,
        "!?" * 100_000,
        "1" * 200_000,
        "a " * 100_000,
        "\u3000 " * 50_000 + "中" * 50_000,
    ],
    ids=["upper", "spaces", "newlines-spaces", "punct", "digits", "a-space", "cjk-spaces"],
)
def test_200kb_hostile_texts_match_tiktoken(enc, oracle, text):
    started = time.monotonic()
    ids = enc.encode_ordinary(text)
    assert time.monotonic() - started < GUARD_SECONDS
    assert ids == oracle.encode_ordinary(text)


# The worst-case shapes of `python -m bench engine` (bench/worst_case.py), 1 MB each, kept whole by both
# patterns. Long pieces merge rank by rank (service/native/bpe_bucket_merge.c); tiktoken is the oracle, and
# the guard is loose on purpose (the merge takes tens of milliseconds here; a quadratic one, minutes).
WORST_CASE_GUARD_SECONDS = 2


@pytest.mark.parametrize("kind", ["repeated letter", "random letters", "random lowercase letters", "repeated emoji"])
def test_1mb_worst_case_piece_matches_tiktoken_within_guard(enc, oracle, kind):
    # Random lowercase letters are one piece under o200k_base too (its letter rule cuts mixed case before each
    # capital): there the bucket merge's slowest cell, ~9,500 ranks taking a turn.
    text = {
        "repeated letter": "a" * ONE_MB,
        "random letters": "".join(random.Random(1).choices(string.ascii_letters, k=ONE_MB)),
        "random lowercase letters": "".join(random.Random(1).choices(string.ascii_lowercase, k=ONE_MB)),
        "repeated emoji": "\N{GRINNING FACE}" * (ONE_MB // 4),
    }[kind]
    started = time.process_time()
    ids = enc.encode_ordinary(text)
    elapsed = time.process_time() - started
    assert ids == oracle.encode_ordinary(text)
    assert elapsed < WORST_CASE_GUARD_SECONDS, f"{kind}: {elapsed:.2f} s CPU for 1 MB"
    assert enc.count(text) == len(ids)  # the count path merges without writing ids
