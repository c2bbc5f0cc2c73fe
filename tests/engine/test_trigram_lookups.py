"""The rank table's trigram tables (rank_table.c, tk_trigram_rank): a merge's candidate of three ASCII letters,
digits or spaces is answered from a bitmap, its counts and the 3-byte tokens' ranks, not from the filter and
slots; one of four such symbols is no token when its first or last three start or end no 4-byte token
(tk_quad_absent). Held to tiktoken: every string of three symbols, every token of four and random strings of
four, and pieces whose merges ask for many of them.

The path is taken by the merge rule's look-ups of candidates (`BpeCore.merge`: the merge of 3-4-byte pieces
and the short merge), not by the whole-piece look-up, so the tests go through `merge` as well as `encode_piece`.
"""

from __future__ import annotations

import functools
import itertools
import random
import string

import pytest
import tiktoken

import tokend
from tokend.engine._native import BpeCore
from tokend.engine.bpe import byte_pair_merge

_NAMES = ("cl100k_base", "o200k_base")
SYMBOLS = string.ascii_letters + string.digits + " "  # the trigram symbols (rank_table.c's tk_trigram_code)


@functools.lru_cache(maxsize=None)
def _core(name: str) -> BpeCore:
    return BpeCore(dict(tokend.get_encoding(name)._mergeable_ranks), "o200k" if name == "o200k_base" else "cl100k",
                   hash_seed=0x7219)


@functools.lru_cache(maxsize=None)
def _oracle(name: str) -> tiktoken.Encoding:
    return tiktoken.get_encoding(name)


def _assert_merged_as_tiktoken(core, oracle, pieces):
    """Each piece's ids from the core's merge and its whole-piece path equal tiktoken's for that piece."""
    expected = [oracle._encode_single_piece(piece) for piece in pieces]
    assert [core.merge(piece) for piece in pieces] == expected
    assert [core.encode_piece(piece) for piece in pieces] == expected


@pytest.mark.parametrize("name", _NAMES)
def test_every_string_of_three_symbols_against_tiktoken(name):
    # 63^3 strings: the tokens among them (cl100k_base 8,000-odd, o200k_base more) are found by the merge's last
    # look-up (the whole string) with their rank from the trigram tables, the rest are none. A bit, a count or a
    # rank in the wrong place, or a symbol coded twice, gives other ids for some of them.
    core, oracle = _core(name), _oracle(name)
    pieces = [bytes(p) for p in itertools.product(SYMBOLS.encode(), repeat=3)]
    _assert_merged_as_tiktoken(core, oracle, pieces)


@pytest.mark.parametrize("name", _NAMES)
def test_strings_of_four_symbols_against_tiktoken(name):
    # Every token of four symbols (found past its head and tail bits), strings one symbol off from one (a head
    # or a tail that some token has), and random ones (most with neither): a head or tail bit read at the other
    # one's index, or a symbol's code off, stops tokens here.
    core, oracle, rng = _core(name), _oracle(name), random.Random(4)
    symbols = set(SYMBOLS.encode())
    tokens = [token for token in oracle._mergeable_ranks if len(token) == 4 and set(token) <= symbols]
    near = [token[:k] + bytes([rng.choice(SYMBOLS.encode())]) + token[k + 1:] for token in tokens for k in (0, 3)]
    randoms = ["".join(rng.choices(SYMBOLS, k=4)).encode() for _ in range(50_000)]
    pieces = tokens + near + randoms
    _assert_merged_as_tiktoken(core, oracle, pieces)


@pytest.mark.parametrize("name", _NAMES)
def test_pieces_of_symbols_whose_merges_ask_for_trigrams_against_tiktoken(name):
    # Pieces of 4-40 bytes over the symbols (the short merge's candidates of 3 bytes anywhere in the piece),
    # some with a byte outside them (a candidate holding it takes the filter and slots), and real words.
    core, oracle, rng = _core(name), _oracle(name), random.Random(20261206)
    alphabets = (SYMBOLS, string.ascii_lowercase, string.ascii_letters, "etaoinshrdlu", string.digits + " ")
    pieces = []
    for _ in range(6000):
        alphabet = rng.choice(alphabets)
        piece = "".join(rng.choices(alphabet, k=rng.randint(4, 40)))
        if rng.random() < 0.2:
            at = rng.randrange(len(piece))
            piece = piece[:at] + rng.choice("-_.é\n") + piece[at:]
        pieces.append(piece.encode())
    words = ["Tokenization", "internationalisation", "zyxwvut", "Qqq", "aaaaaaa", " the", " 2026", "1234567"]
    pieces += [word.encode() for word in words]
    _assert_merged_as_tiktoken(core, oracle, pieces)


def test_a_vocabulary_without_three_byte_tokens_and_one_of_only_them():
    # No token of three symbols (the tables are empty: every look-up of one is none), and a vocabulary whose
    # 3-byte tokens rank below their parts' pairs (the ranks come from the tables, in the vocabulary's order);
    # against the Python reference of the rule.
    single = {bytes([b]): b for b in range(256)}
    none = single | {b"ab": 256, b"bc": 257, b"abcd": 258}
    odd = single | {b"ab": 300, b"bc": 301, b"abc": 257, b"cab": 256, b"9 Z": 258, b"9 ": 302, b"Z9 ": 259}
    for ranks in (none, odd):
        core = BpeCore(ranks, None, hash_seed=1)
        for piece in (b"abc", b"abcabc", b"cabc", b"9 Z", b"Z9 Z", b"abcd", b"xabcabcabcy9 Z9 "):
            assert core.merge(piece) == byte_pair_merge(piece, ranks), (piece, ranks is odd)
    assert BpeCore(odd, None, hash_seed=1).merge(b"cabc") == [256, 99]
