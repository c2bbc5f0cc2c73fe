"""Characters formed before the merge (native/char_atoms.c): the group merge of a list's short pieces, and the merge
of pieces of 5-128 bytes under a list's rule or tiktoken's, starts a character of 2-4 bytes as its token where no
token that crosses into it, from the kind of byte beside it, nor one that holds it whole with more bytes, has an id
below the highest merge of its own bytes. Held to the pair table's merge (no atoms, held to the Python reference in
test_native_pair_merge.py) and to tiktoken on random vocabularies whose tokens cross characters every way, and to
`tokenizers` on Qwen 3 and Llama 3 (tiktoken on cl100k_base and o200k_base: test_conformance.py).
"""

from __future__ import annotations

import random
from array import array

import pytest
import tiktoken

from support.merge_lists import merge_list
from tokend.engine._native import BpeCore
from tokend.engine.patterns import GPT4_PATTERN

# A 2-, a 3- and a 4-byte letter (the 4-byte one a letter too, so that pieces hold it beside the others), and ASCII
# neighbours of both kinds the atoms tell apart (a space, a letter).
_LETTERS = "éж中𝐀a"


def _random_list(rng: random.Random, every_split: bool) -> tuple[dict[bytes, int], list[int], list[str]]:
    """A vocabulary grown from the letters' bytes and a space (every byte a token, then joins of two tokens of up
    to 8 bytes, ids in creation order: parts of characters, characters, tokens that cross into a character from
    either side or hold one whole) and its merge list, every split (Llama 3's kind) or one split a token picked at
    random in merged-id order (a trained list, Qwen 3's kind); and the letters used."""
    letters = rng.sample(_LETTERS, rng.randint(2, len(_LETTERS)))
    ids = {bytes([b]): b for b in range(256)}
    tokens = sorted({bytes([b]) for letter in letters for b in letter.encode()} | {b" "})
    for _ in range(rng.randint(10, 120)):
        if rng.random() < 0.15:  # a character whole, so that it may be an atom
            token = rng.choice(letters).encode()
            parts = [token[:at] for at in range(1, len(token)) if token[:at] in ids and token[at:] in ids]
            if not parts:
                token = token[:2]
        else:
            token = rng.choice(tokens) + rng.choice(tokens)
        if len(token) <= 8 and token not in ids and any(token[:at] in ids and token[at:] in ids
                                                        for at in range(1, len(token))):
            ids[token] = len(ids)
            tokens.append(token)
    return ids, merge_list(ids, rng, every_split), letters


def _text(rng: random.Random, letters: list[str], longer: float = 0.05, longest: int = 12) -> str:
    """Words of 1-6 letters (pieces of up to 15 bytes: the group's) after a space or not, and a longer one (7 to
    `longest` letters) at the rate `longer` (the rank table's way)."""
    words = []
    for _ in range(500):
        n = rng.randint(1, 6) if rng.random() >= longer else rng.randint(7, longest)
        word = "".join(rng.choice(letters) for _ in range(n))
        while len(word.encode()) > 15 and n <= 6:
            word = word[:-1]
        words.append(rng.choice(["", " ", " ", "-"]) + word)
    return "".join(words)


@pytest.mark.parametrize("every_split", [True, False], ids=["every-split", "trained"])
def test_random_lists_start_characters_as_atoms_only_where_the_pair_table_gives_the_same_ids(every_split):
    rng = random.Random(51 if every_split else 52)
    with_atoms = 0
    for _ in range(60):
        ids, merges, letters = _random_list(rng, every_split)
        text = _text(rng, letters)
        expected = BpeCore(ids, "cl100k", merges=array("I", merges), ignore_merges=every_split, merge_index=False,
                           short_table_after=0)
        assert expected.char_atoms == 0  # the pair table's merge never takes atoms
        for op in ("encode", "count"):
            core = BpeCore(ids, "cl100k", merges=array("I", merges), ignore_merges=every_split, short_table_after=0)
            for _ in range(2):  # the first pass merges in groups, the second finds the pieces in the table
                got, want = (core.encode(text), expected.encode(text)) if op == "encode" else (core.count(text), expected.count(text))
                assert got == want, (letters, text[:200])
            assert core.short_table_stats()["grouped"] > 0
        with_atoms += core.char_atoms > 0
    assert with_atoms >= 20  # most vocabularies have characters that may start whole


def test_a_token_crossing_into_a_character_from_a_space_keeps_it_bytes_after_a_space_only():
    """" \\xc3" (a space and é's first byte) made before é: after a space, é's bytes meet the space first (" é" is
    then " \\xc3" + "\\xa9", no é); after a letter, é may start whole. Both against the pair table."""
    ids = {bytes([b]): b for b in range(256)}
    for token in (b" \xc3", "é".encode(), "aé".encode(), " \xc3\xa9a".encode()):
        ids[token] = len(ids)
    merges = sorted(((ids[t[:at]], ids[t[at:]], i) for t, i in ids.items() for at in range(1, len(t))
                     if t[:at] in ids and t[at:] in ids), key=lambda merge: (merge[2], merge[0]))
    flat = array("I", [value for merge in merges for value in merge])
    expected = BpeCore(ids, "cl100k", merges=flat, ignore_merges=True, merge_index=False, short_table_after=0)
    core = BpeCore(ids, "cl100k", merges=flat, ignore_merges=True, short_table_after=0)
    assert core.char_atoms == 1
    text = " éa aé éé  éa aéa"
    assert core.encode(text) == expected.encode(text)
    assert core.encode(" éa") == [ids[b" \xc3"], 0xA9, ord("a")]  # no é: the space took its first byte


@pytest.mark.parametrize("name", ["qwen3", "llama3"])
def test_the_open_families_have_atoms(name):
    """Qwen 3 and Llama 3 (their lists' group merge) have characters that are tokens to start from. Their ids against
    `tokenizers` on text of many scripts: test_merge_group.py's list test and the family conformance suites."""
    from tokend.engine import Encoding

    from .test_merge_group import _list_models

    model, _ = _list_models()[name]
    assert Encoding.from_model(model)._core.char_atoms > 1000


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_tiktoken_encodings_have_atoms(name):
    """tiktoken's rule (a pair's key is its merged token's rank) takes atoms too, in its merge of pieces of 5-128
    bytes (o200k_base keeps a Thai or Devanagari word one piece of 16-128 bytes); their ids against tiktoken:
    test_conformance.py."""
    from tokend import get_encoding

    assert get_encoding(name)._core.char_atoms > 1000


def _tiktoken_oracle(ranks: dict[bytes, int]) -> tiktoken.Encoding:
    return tiktoken.Encoding("atoms", pat_str=GPT4_PATTERN, mergeable_ranks=ranks, special_tokens={})


@pytest.mark.parametrize("shuffled", [True, False], ids=["ranks-shuffled", "ranks-in-creation-order"])
def test_random_ranks_start_characters_as_atoms_only_where_tiktoken_gives_the_same_ids(shuffled):
    """tiktoken's rule over the random vocabularies above, their ranks in creation order or shuffled (a character's
    token may then rank below its parts, and a token crossing into it below the character: bounds the creation order
    never tests), against tiktoken: text through the first and second pass (pieces of 16-128 bytes merged, then
    cached) and each piece alone (pieces of 5-15 bytes through the same merge)."""
    rng = random.Random(61 if shuffled else 62)
    with_atoms = 0
    for _ in range(60):
        ids, _, letters = _random_list(rng, every_split=True)
        tokens = sorted(ids, key=ids.get)
        if shuffled:
            rng.shuffle(tokens)
        ranks = {token: rank for rank, token in enumerate(tokens)}
        oracle = _tiktoken_oracle(ranks)
        text = _text(rng, letters, longer=0.3, longest=40)
        want = oracle.encode_ordinary(text)
        core = BpeCore(ranks, "cl100k", short_table_after=0)
        for _ in range(2):  # the first pass merges long pieces, the second finds them in the piece cache
            assert core.encode(text) == want, (letters, text[:200])
            assert core.count(text) == len(want)
        fresh = BpeCore(ranks, "cl100k", short_table_after=0)
        assert fresh.count(text) == len(want)
        for piece in {piece.encode() for piece in text.split()}:
            assert core.encode_piece(piece) == oracle._encode_single_piece(piece), piece
        with_atoms += core.char_atoms > 0
    assert with_atoms >= 20


def test_tiktoken_rule_keeps_a_character_bytes_after_a_space_a_token_crosses_from():
    """" \xc3" (a space and é's first byte) ranked below é: after a space é's bytes meet the space first, after a
    letter é may start whole. Pieces of 5+ bytes (shorter ones skip the atoms), against tiktoken."""
    ranks = {bytes([b]): b for b in range(256)}
    for token in (b" \xc3", "é".encode(), "aé".encode(), " \xc3\xa9a".encode()):
        ranks[token] = len(ranks)
    core, oracle = BpeCore(ranks, "cl100k"), _tiktoken_oracle(ranks)
    assert core.char_atoms == 1
    for piece in (" éaéa", " éaaé", "aéaéé", " ééaaa"):
        assert core.encode_piece(piece.encode()) == oracle._encode_single_piece(piece.encode()), piece
    assert core.encode_piece(" éaaa".encode()) == [ranks[b" \xc3"], 0xA9, ord("a"), ord("a"), ord("a")]


def test_tiktoken_rule_keeps_a_character_bytes_where_a_token_holding_it_whole_ranks_below_it():
    """"aé" (300) below é (400): formed up front after "a", é would let "aé" merge before "ba" (350) in "bbaé"; from its
    bytes it forms only after "ba" has taken the "a": [b, ba, é], as tiktoken gives. On its right "éc" (301) below é
    against "cd" (351) in "écdd": [é, cd, d]. Beside another é (no token crosses there) it may start whole."""
    ranks = {bytes([b]): b for b in range(256)}
    ranks.update({"aé".encode(): 300, "éc".encode(): 301, b"ba": 350, b"cd": 351, "é".encode(): 400})
    core, oracle = BpeCore(ranks, "cl100k"), _tiktoken_oracle(ranks)
    assert core.char_atoms == 1
    for piece in ("bbaé", "bbaéé", "ébaéc", "écdd", "ééécdd", "ccccé"):
        assert core.encode_piece(piece.encode()) == oracle._encode_single_piece(piece.encode()), piece
    assert core.encode_piece("bbaé".encode()) == [ord("b"), 350, 400]
    assert core.encode_piece("écdd".encode()) == [400, 351, ord("d")]


def test_a_token_holding_a_character_whole_below_its_own_merge_keeps_it_bytes():
    """Ids not in creation order (a list of every split sorted by merged id, as read from a file): "aé" (300) below é
    (400), no token crossing into é. Formed up front, é would let "aé" merge before "ba" (350) in "baé"; from its
    bytes it forms only after "ba" has taken the "a": [ba, é], not [b, aé]."""
    ids = {bytes([b]): b for b in range(256)}
    ids.update({"aé".encode(): 300, b"ba": 350, "é".encode(): 400})
    merges = sorted(((ids[t[:at]], ids[t[at:]], i) for t, i in ids.items() for at in range(1, len(t))
                     if t[:at] in ids and t[at:] in ids), key=lambda merge: (merge[2], merge[0]))
    flat = array("I", [value for merge in merges for value in merge])
    expected = BpeCore(ids, "cl100k", merges=flat, ignore_merges=True, merge_index=False, short_table_after=0)
    core = BpeCore(ids, "cl100k", merges=flat, ignore_merges=True, short_table_after=0)
    assert core.merge_path == "pairs-all-splits"
    text = " baé aé baéa"
    assert core.encode(text) == expected.encode(text)
    assert core.encode("baé") == [350, 400]
