"""The loops over pieces take a text's pieces in batches of PIECE_BATCH (64; native/piece_batch.h): found, looked up
(a piece that is no token has its piece-cache slots prefetched then), handed out in order. Held to tiktoken
at every count of pieces around the batch size, each kind of piece in every place of a batch, in both
loops: a text under 64 KiB (module.c's emit_text, with the GIL) and a batch or a text of 64 KiB or more
(batch_encode.c's encode_item, without it), and for texts cut into parts by special tokens (each part's
loop starts with an empty batch). Pieces that are no token come again and again across the calls of a
test: their second and later passes are cache hits through the prefetched slots.
"""

from __future__ import annotations

import pytest

from tokend.engine._native import PIECE_BATCH

_B = PIECE_BATCH

# Pieces of every length class the lookup tells apart: 1 byte, 2 bytes, a token of 3-8 bytes, a token of more
# than 8 bytes, pieces that are no token (merged: short, cached length, long), and a piece over the 1 KiB
# that is never hashed.
_PIECES = [
    "a", " b", " the", " international", " xqzv", " qwxzvkjq", " zzqxjvkwqzzqxj", "!", "\n\n", "123",
    " " + "qj" * 700,
]

_BIG = 64 * 1024 + 7  # a text this long is encoded by the batch loop even when it is a single text


def _text(n: int, shift: int) -> str:
    return "".join(_PIECES[(i + shift) % len(_PIECES)] for i in range(n))


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, _B - 1, _B, _B + 1, 2 * _B + 1])
def test_every_piece_count_around_the_batch_size(enc, oracle, n):
    for shift in range(len(_PIECES)):
        text = _text(n, shift)
        expected = oracle.encode_ordinary(text)
        assert enc.encode_ordinary(text) == expected, (n, shift)
        assert enc.count(text, disallowed_special=()) == len(expected), (n, shift)


@pytest.mark.parametrize("n", [1, 8, 9, _B, _B + 1])
def test_the_batch_loop_on_the_same_texts(enc, oracle, n):
    texts = [_text(n, shift) for shift in range(len(_PIECES))]
    expected = [oracle.encode_ordinary(text) for text in texts]
    assert enc.encode_ordinary_batch(texts, num_threads=2) == expected
    assert enc.count_batch(texts, num_threads=2, disallowed_special=()) == [len(ids) for ids in expected]


@pytest.mark.parametrize("tail", [0, 1, 7, 8, 9, _B - 1, _B, _B + 1])
def test_a_big_text_ends_in_a_part_batch(enc, oracle, tail):
    # A big text ending in `tail` pieces after a long run of others: its last batch is a part one.
    body = _text(_BIG // 6, 0)
    text = body + _text(tail, 3)
    expected = oracle.encode_ordinary(text)
    assert len(text.encode()) >= _BIG
    assert enc.encode_ordinary(text) == expected
    assert enc.count(text, disallowed_special=()) == len(expected)


def test_special_tokens_between_batch_fulls(enc, oracle):
    # Text around special tokens is encoded part by part: each part's loop starts with an empty batch.
    text = "<|endoftext|>".join(_text(n, n) for n in (0, 3, 8, 9, _B, _B + 1, _B + 4))
    expected = oracle.encode(text, allowed_special="all")
    assert enc.encode(text, allowed_special="all") == expected
    assert enc.count(text, allowed_special="all") == len(expected)
