"""The short merge's pair look-ups against tiktoken: pairs of frequent tokens and of rare ones.

Written for a look-up structure keyed by the two parts' tokens (an id-pair grid over the lowest ranks, as
fastokens has; tried and not kept: docs/decisions.md, "An id-pair grid for the merge's look-ups"), which answers
some pairs and hands the rest to the rank table: the merge must give tiktoken's ids whichever way each pair of a
piece is looked up. Pieces made of low-rank tokens only (every pair inside such a grid), of high-rank tokens only
(every pair outside), and of both in turn (each merge's new pairs on either side), whole and cut at any byte, in
cl100k_base, o200k_base and a vocabulary trained here (where tokens past the grid's 1,024 are few and recent
merges).

    >>> core = BpeCore({bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257}, None)
    >>> core.merge(b"abcab")
    [257, 256]
"""

from __future__ import annotations

import functools
import random

import pytest
import tiktoken

import tokend
from tests.corpus import corpus_texts
from tokend.engine import GPT4_PATTERN, train
from tokend.engine._native import BpeCore

# Tokens counted as "frequent": the lowest ranks of 1-8 bytes, as many as the grid measured here held.
_FREQUENT = 1024
_NATIVE_PATTERN = {"cl100k_base": "cl100k", "o200k_base": "o200k"}


@functools.lru_cache(maxsize=None)
def _trained_ranks() -> dict[bytes, int]:
    documents = corpus_texts(limit_bytes=150_000, kinds=("multilingual", "english"))
    ranks = dict(train(documents, 1400).encoding._mergeable_ranks)
    assert len(ranks) > _FREQUENT + 100  # tokens on both sides
    return ranks


def _ranks(name: str) -> dict[bytes, int]:
    if name == "trained":
        return _trained_ranks()
    return dict(tokend.get_encoding(name)._mergeable_ranks)


def _pieces(ranks: dict[bytes, int], rng: random.Random, count: int) -> list[bytes]:
    by_rank = sorted(ranks, key=ranks.__getitem__)
    short = [token for token in by_rank if len(token) <= 8]
    frequent, rare = short[:_FREQUENT], short[_FREQUENT:] + [t for t in by_rank if len(t) > 8]
    pieces = []
    for i in range(count):
        kind = i % 3  # frequent only, rare only, both in turn
        parts, size, limit = [], 0, rng.choice([6, 12, 24, 48, 100])
        while size < limit:
            pool = (frequent, rare, frequent if len(parts) % 2 else rare)[kind]
            parts.append(rng.choice(pool))
            size += len(parts[-1])
        piece = b"".join(parts)
        start = rng.randrange(len(piece)) if rng.random() < 0.3 else 0  # cut anywhere: inside a character too
        pieces.append(piece[start:start + 128])
    return pieces


def _oracle(name: str, ranks: dict[bytes, int]) -> tiktoken.Encoding:
    if name != "trained":
        return tiktoken.get_encoding(name)
    return tiktoken.Encoding("trained", pat_str=GPT4_PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "trained"])
def test_pieces_of_frequent_and_rare_tokens_against_tiktoken(name):
    ranks = _ranks(name)
    oracle = _oracle(name, ranks)
    core = BpeCore(ranks, None, cache_capacity=0)
    rng = random.Random(f"merge-pairs-{name}")
    for piece in _pieces(ranks, rng, 3000):
        assert core.encode_piece(piece) == oracle._encode_single_piece(piece), piece


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_corpus_text_against_tiktoken(name):
    # The same through the piece loop, the short table and the cut (a text of each kind, counted and encoded).
    core = BpeCore(_ranks(name), _NATIVE_PATTERN[name], short_table_after=0)
    oracle = tiktoken.get_encoding(name)
    for text in corpus_texts(limit_bytes=400_000, kinds=("multilingual", "english", "code")):
        expected = oracle.encode_ordinary(text)
        assert core.encode(text) == expected
        assert core.count(text) == len(expected)


def test_trained_vocabulary_text_against_tiktoken():
    ranks = _trained_ranks()
    core = BpeCore(ranks, "cl100k", short_table_after=0)
    oracle = _oracle("trained", ranks)
    for text in corpus_texts(limit_bytes=200_000, kinds=("multilingual", "english", "code")):
        assert core.encode(text) == oracle.encode_ordinary(text)


@pytest.mark.parametrize("seed", range(6))
def test_one_token_from_pairs_on_either_side_against_tiktoken(seed):
    # One token is often two different splits that are candidates at once ("ab" + "a" and "a" + "ba" both
    # make "aba"): tiktoken takes the leftmost. With one split's parts among the frequent tokens and the
    # other's not, the two are looked up different ways, and must still compare as the same token. A
    # vocabulary of ~1,500 tokens over three letters (ranks shuffled: frequent ones of every length), pieces
    # of those letters.
    rng = random.Random(f"either-side-{seed}")
    alphabet = [b"a", b"b", b"c"]
    tokens, vocabulary = list(alphabet), {bytes([b]) for b in range(256)}
    while len(vocabulary) < 1800:
        token = rng.choice(tokens) + rng.choice(tokens)
        if len(token) <= 8 and token not in vocabulary:
            vocabulary.add(token)
            tokens.append(token)
    singles = [bytes([b]) for b in range(256)]
    rest = sorted(vocabulary - set(singles))
    rng.shuffle(rest)
    ranks = {token: rank for rank, token in enumerate(singles + rest)}
    oracle = tiktoken.Encoding("letters", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={})
    core = BpeCore(ranks, None, cache_capacity=0)
    for _ in range(3000):
        piece = bytes(rng.choice(b"abc") for _ in range(rng.randrange(3, 40)))
        assert core.encode_piece(piece) == oracle._encode_single_piece(piece), piece
