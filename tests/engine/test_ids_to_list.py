"""The lists `BpeCore.encode` and `encode_batch` answer: each id as the model's int object, the object of the id 32
places on and the slot of the one 128 places on fetched ahead; `encode` reads its ids from the end in chunks of 2^18
(native/module.c `ids_to_list`), a batch's items from the start (text_parts.c `tk_ids_to_list`). Held to
tiktoken's ids at every length around those distances and across the chunks.

    >>> core = BpeCore(ranks, "cl100k")
    >>> core.encode(" the cat") == tiktoken.get_encoding("cl100k_base").encode_ordinary(" the cat")
    True
"""

from __future__ import annotations

import functools
import random

import pytest
import tiktoken

import tokend
from tokend.engine._native import BpeCore

_NATIVE = {"cl100k_base": "cl100k", "o200k_base": "o200k"}
_CHUNK = 1 << 18  # module.c TK_SHRINK_SINK_IDS


@functools.lru_cache(maxsize=None)
def _ranks(name: str) -> dict[bytes, int]:
    return dict(tokend.get_encoding(name)._mergeable_ranks)


@functools.lru_cache(maxsize=None)
def _words(name: str) -> list[str]:
    """Tokens that are a space and 2-10 ASCII letters: each is one id of its own in a text of them."""
    return sorted(token.decode() for token in _ranks(name)
                  if 3 <= len(token) <= 11 and token[:1] == b" " and token[1:].isalpha() and token.isascii())


@pytest.mark.parametrize("name", sorted(_NATIVE))
def test_lists_of_every_length_around_the_prefetch_distances(name):
    """Texts of 1-160 ids, the ids spread over the vocabulary (each object another line), so that the first
    and last 32 and 128 ids of a list, fetched ahead or not, are each held to tiktoken."""
    rng = random.Random(7)
    core = BpeCore(_ranks(name), _NATIVE[name])
    oracle = tiktoken.get_encoding(name)
    for n in range(1, 161):
        text = "".join(rng.choice(_words(name)) for _ in range(n))
        expected = oracle.encode_ordinary(text)
        assert core.encode(text) == expected, text


@pytest.mark.parametrize("name", sorted(_NATIVE))
def test_a_batchs_lists_of_every_length_around_the_prefetch_distances(name):
    """The same lengths as items of one batch (each item's list built on its own), one thread and two."""
    rng = random.Random(9)
    core = BpeCore(_ranks(name), _NATIVE[name])
    oracle = tiktoken.get_encoding(name)
    texts = ["".join(rng.choice(_words(name)) for _ in range(n)) for n in range(1, 161)]
    expected = [oracle.encode_ordinary(text) for text in texts]
    for threads in (1, 2):
        assert core.encode_batch(texts, threads) == expected


@pytest.mark.parametrize("name", sorted(_NATIVE))
def test_a_list_of_more_ids_than_two_chunks(name):
    """A text of ~2.2 chunks of ids (its ids read back in three chunks, the array given back between them)."""
    rng = random.Random(8)
    words = _words(name)
    text = "".join(rng.choice(words) for _ in range(_CHUNK * 2 + 50_000))
    expected = tiktoken.get_encoding(name).encode_ordinary(text)
    assert len(expected) > 2 * _CHUNK
    got = BpeCore(_ranks(name), _NATIVE[name]).encode(text)
    assert len(got) == len(expected)
    first_difference = next((k for k, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    assert first_difference is None, first_difference  # not pytest's diff of two lists of 574,288 ids
