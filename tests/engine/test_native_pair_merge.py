"""The native pair-priority merge against its Python reference (tokend.engine.pair_bpe) on random merge
lists, both ways the core looks pairs up (the pair table, pair_merge.c; through the vocabulary,
merge_index.c, which it takes whenever every merge joins bytes and every byte has a token), on both sides of
the switch between their short- and long-piece algorithms, and within a time guard on 1 MB pieces. Real merge lists are held to Hugging Face `tokenizers` in
test_hf_tokenizer_json.py.

    >>> vocabulary = {bytes([b]): b for b in range(256)} | {b"ab": 256}
    >>> BpeCore(vocabulary, None, merges=array("I", [97, 98, 256])).merge(b"aab")
    [97, 256]
"""

from __future__ import annotations

import time
from array import array

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tokend.engine._native import BpeCore
from tokend.engine.pair_bpe import pair_byte_pair_encode

_SINGLE_BYTES = {bytes([b]): b for b in range(256)}


def _core(vocabulary, merges, *, ignore_merges=False, capacity=64, merge_index=True):
    flat = array("I", [value for merge in merges for value in merge])
    return BpeCore(vocabulary, None, cache_capacity=capacity, merges=flat, ignore_merges=ignore_merges,
                   merge_index=merge_index)


def test_hand_checked_merges():
    vocabulary = _SINGLE_BYTES | {b"ab": 256, b"bc": 257, b"abc": 258, b"aa": 259}
    # priority = place in the list: (b, c) before (a, b), so "abc" -> a + bc, and no merge makes a + bc
    core = _core(vocabulary, [(98, 99, 257), (97, 98, 256), (256, 99, 258)])
    assert core.merge(b"abc") == [97, 257]
    # tiktoken's rule would give "abc" (258) from "a" + "bc" (their concatenation is a token); this rule does not
    assert BpeCore(vocabulary, None).merge(b"abc") == [258]
    core = _core(vocabulary, [(97, 98, 256), (256, 99, 258), (98, 99, 257)])
    assert core.merge(b"abc") == [258]
    core = _core(vocabulary, [(97, 97, 259)])
    assert core.merge(b"aaa") == [259, 97]  # ties: leftmost first
    assert core.merge(b"a" * 129) == [259] * 64 + [97]


def test_a_merge_listed_twice_keeps_its_later_place():
    # Hugging Face builds its merge map from the list in order, so the later entry wins.
    vocabulary = _SINGLE_BYTES | {b"ab": 256, b"bc": 257}
    merges = [(97, 98, 256), (98, 99, 257), (97, 98, 256)]  # (a, b) now ranks after (b, c)
    assert _core(vocabulary, merges).merge(b"abc") == [97, 257]


def test_ignore_merges_is_the_whole_piece_shortcut():
    vocabulary = _SINGLE_BYTES | {b"ab": 256, b"abc": 257}
    merges = [(97, 98, 256)]  # no merge makes "abc"
    assert _core(vocabulary, merges).encode_piece(b"abc") == [256, 99]
    assert _core(vocabulary, merges, ignore_merges=True).encode_piece(b"abc") == [257]
    assert _core(vocabulary, merges, ignore_merges=True).merge(b"abc") == [256, 99]


def test_bytes_without_an_id_are_dropped():
    vocabulary = {bytes([b]): b for b in range(0xF5)} | {b"ab": 300}
    core = _core(vocabulary, [(97, 98, 300)])
    assert core.merge(b"a\xffb") == [300]  # as Hugging Face skips a character it cannot find
    assert core.encode_piece(b"\xfe\xff") == []


def test_bad_merge_lists_are_refused():
    with pytest.raises(ValueError, match="not a token"):
        _core(_SINGLE_BYTES, [(97, 98, 999)])
    with pytest.raises(TypeError, match="array"):
        BpeCore(_SINGLE_BYTES, None, merges=array("H", [1, 2, 3]))
    with pytest.raises(TypeError, match="array"):
        BpeCore(_SINGLE_BYTES, None, merges=array("I", [1, 2]))


@st.composite
def _merge_list_and_pieces(draw):
    """A merge list over a small alphabet (random priorities, some merges listed twice, some tokens made by
    several merges, as converted vocabularies have) and pieces of 1..400 bytes over the alphabet."""
    rng = draw(st.randoms(use_true_random=False))
    alphabet = [bytes([b]) for b in draw(st.lists(st.integers(0, 255), min_size=1, max_size=5, unique=True))]
    ids = dict(_SINGLE_BYTES)
    tokens = list(alphabet)
    merges: list[tuple[int, int, int]] = []
    next_id = 255
    for _ in range(draw(st.integers(0, 150))):
        left, right = rng.choice(tokens), rng.choice(tokens)
        merged = left + right
        if len(merged) > 24:
            continue
        if merged not in ids:
            next_id += 1 + rng.randrange(3)  # ids need not be dense, but are distinct (the core refuses a shared one)
            ids[merged] = next_id
            tokens.append(merged)
        merges.append((ids[left], ids[right], ids[merged]))
    if draw(st.booleans()):
        rng.shuffle(merges)  # priorities unrelated to how the tokens were built
    lengths = draw(st.lists(st.one_of(st.sampled_from([1, 2, 127, 128, 129, 300]), st.integers(1, 400)), min_size=1, max_size=4))
    pieces = []
    for length in lengths:
        parts: list[bytes] = []
        while sum(map(len, parts)) < length:
            parts.append(rng.choice(tokens))
        pieces.append(b"".join(parts)[:length])
    return ids, merges, pieces


def test_the_core_looks_pairs_up_through_the_vocabulary_when_every_merge_joins_bytes():
    vocabulary = _SINGLE_BYTES | {b"ab": 256, b"bc": 257, b"abc": 258}
    merges = [(98, 99, 257), (97, 98, 256), (256, 99, 258), (97, 257, 258)]  # "abc" made two ways
    assert _core(vocabulary, merges).merge_path == "pairs-by-token"
    assert _core(vocabulary, merges, merge_index=False).merge_path == "pairs-table"
    assert BpeCore(vocabulary, None).merge_path == "rank"
    for merge_index in (True, False):
        assert _core(vocabulary, merges, merge_index=merge_index).merge(b"abc") == [258]  # a + bc, then (a, bc)
        assert _core(vocabulary, merges[:3], merge_index=merge_index).merge(b"abc") == [97, 257]


def test_lists_the_vocabulary_cannot_answer_keep_the_pair_table():
    # A merge whose result is not its parts' bytes: the pair rule takes the list's word for it.
    vocabulary = _SINGLE_BYTES | {b"xy": 256, b"ab": 257}
    core = _core(vocabulary, [(97, 98, 256)])
    assert core.merge_path == "pairs-table"
    assert core.merge(b"zabz") == [122, 256, 122]
    # A byte without a token: the pair rule drops it, so the parts are no longer the tokens of their bytes.
    vocabulary = {bytes([b]): b for b in range(0xF5)} | {b"ab": 300}
    core = _core(vocabulary, [(97, 98, 300)])
    assert core.merge_path == "pairs-table"
    assert core.merge(b"a\xffb") == [300]


@settings(max_examples=150, deadline=None)
@given(case=_merge_list_and_pieces(), ignore_merges=st.booleans(), merge_index=st.booleans())
def test_native_merge_matches_the_python_reference(case, ignore_merges, merge_index):
    ids, merges, pieces = case
    core = _core(ids, merges, ignore_merges=ignore_merges, merge_index=merge_index)
    # (a small random list is now and then every split in order: the other indexed path)
    assert core.merge_path in (("pairs-by-token", "pairs-by-id", "pairs-all-splits") if merge_index else ("pairs-table",))
    table = {}
    for priority, (left, right, merged) in enumerate(merges):
        table[left, right] = (priority, merged)  # a later listing replaces an earlier one
    for piece in pieces:
        for length in sorted({len(piece)} | ({127, 128, 129} if len(piece) > 129 else set())):
            part = piece[:length]
            expected = pair_byte_pair_encode(part, {b: b for b in range(256)}, table)
            assert core.merge(part) == expected, part
            whole = ids.get(part)
            assert core.encode_piece(part) == ([whole] if ignore_merges and whole is not None else expected)


@pytest.mark.parametrize("merge_index", [True, False])
@pytest.mark.parametrize("text", [b"a" * 1_000_000, bytes(range(97, 123)) * 40_000])
def test_one_megabyte_piece_within_guard(text, merge_index):
    # Every merge of a chain: "a"+"a", "aa"+"aa", ... (the worst shape for the heap: long runs of one pair).
    ids = dict(_SINGLE_BYTES)
    merges = []
    token = b"a"
    for _ in range(12):
        ids[token + token] = len(ids)
        merges.append((ids[token], ids[token], ids[token + token]))
        token += token
    core = _core(ids, merges, capacity=0, merge_index=merge_index)
    started = time.process_time()
    out = core.merge(text)
    assert time.process_time() - started < 5.0  # generous: 0.1-1.1 s here
    token_bytes = {token_id: token for token, token_id in ids.items()}
    assert b"".join(token_bytes[token_id] for token_id in out) == text


def _every_split_in_order(ids: dict[bytes, int]) -> list[tuple[int, int, int]]:
    """Every split of every token into two tokens, sorted by (merged id, left id): how a tokenizer.json is
    converted from tiktoken ranks (Llama 3's; tests/support/tokenizer_json.py builds it the same way)."""
    merges = [(ids[token[:at]], ids[token[at:]], token_id) for token, token_id in ids.items()
              for at in range(1, len(token)) if token[:at] in ids and token[at:] in ids]
    return sorted(merges, key=lambda merge: (merge[2], merge[0]))


@st.composite
def _every_split_vocabulary_and_pieces(draw):
    """A vocabulary over a two- or three-letter alphabet with random ids (so two splits of one token are
    often candidates at once: "ab" + "a" and "a" + "ba"), its every-split list, and pieces over the alphabet."""
    rng = draw(st.randoms(use_true_random=False))
    alphabet = b"ab" if draw(st.booleans()) else b"abc"
    ids = dict(_SINGLE_BYTES)
    tokens = [bytes([letter]) for letter in alphabet]
    free = list(range(256, 256 + 400))
    rng.shuffle(free)
    for _ in range(draw(st.integers(1, 60))):
        token = rng.choice(tokens) + rng.choice(tokens)
        if len(token) <= 6 and token not in ids:
            ids[token] = free.pop()
            tokens.append(token)
    pieces = [bytes(rng.choice(alphabet) for _ in range(draw(st.integers(1, 140)))) for _ in range(4)]
    return ids, _every_split_in_order(ids), pieces


@settings(max_examples=150, deadline=None)
@given(case=_every_split_vocabulary_and_pieces(), ignore_merges=st.booleans())
def test_an_every_split_list_runs_as_tiktokens_rule_with_the_lists_tie_break(case, ignore_merges):
    ids, merges, pieces = case
    core = _core(ids, merges, ignore_merges=ignore_merges)
    assert core.merge_path == "pairs-all-splits"
    table = _core(ids, merges, ignore_merges=ignore_merges, merge_index=False)
    priorities = {(left, right): (priority, merged) for priority, (left, right, merged) in enumerate(merges)}
    for piece in pieces:
        expected = pair_byte_pair_encode(piece, {b: b for b in range(256)}, priorities)
        assert core.merge(piece) == expected == table.merge(piece), piece
        assert core.encode_piece(piece) == table.encode_piece(piece)


def test_lists_that_are_not_every_split_in_order_use_the_index():
    vocabulary = _SINGLE_BYTES | {b"ab": 256, b"ba": 257, b"aba": 258}
    merges = _every_split_in_order(vocabulary)
    assert _core(vocabulary, merges).merge_path == "pairs-all-splits"
    assert _core(vocabulary, merges[:-1]).merge_path == "pairs-by-id"  # a split missing: one merge per token
    assert _core(vocabulary, merges[::-1]).merge_path == "pairs-by-token"  # another order
    assert _core(vocabulary, merges + merges[-1:]).merge_path == "pairs-by-token"  # one listed twice


@settings(max_examples=150, deadline=None)
@given(case=_merge_list_and_pieces(), ignore_merges=st.booleans())
def test_a_list_in_merged_id_order_with_one_merge_per_token_runs_by_id(case, ignore_merges):
    # A trained list (Qwen's): token ids in merge order, so the merged id serves as the priority.
    ids, merges, pieces = case
    first = {}
    for left, right, merged in merges:
        first.setdefault(merged, (left, right, merged))
    merges = sorted(first.values(), key=lambda merge: merge[2])
    core = _core(ids, merges, ignore_merges=ignore_merges)
    # (a short list may also be every split in order, the path with no index lookups: tested above)
    assume(core.merge_path != "pairs-all-splits")
    assert core.merge_path == "pairs-by-id"
    table = _core(ids, merges, ignore_merges=ignore_merges, merge_index=False)
    priorities = {(left, right): (priority, merged) for priority, (left, right, merged) in enumerate(merges)}
    for piece in pieces:
        for length in sorted({len(piece)} | ({127, 128, 129} if len(piece) > 129 else set())):
            part = piece[:length]
            expected = pair_byte_pair_encode(part, {b: b for b in range(256)}, priorities)
            assert core.merge(part) == expected == table.merge(part), part
            assert core.encode_piece(part) == table.encode_piece(part)
