"""One huge piece per family (issue 18's worst case, issue 13's bound): the same ids as the family's reference
library, and for byte-level merge lists the same linear merges as tiktoken's rule.

The inputs are the one-piece inputs of `python -m bench family-worst` (bench/family_worst.py), smaller: a repeated letter,
random letters, random lowercase letters, a run of spaces, a run of newlines, a repeated emoji and a repeated
U+1D160 (three characters once NFC has decomposed it). Each is one piece (or one SentencePiece segment) under
every family's split.

Byte-level tokenizer.json lists whose order is the merged ids' (merge_index.c: Llama 3's every split, Qwen 3's,
GPT-2's and DeepSeek's trained lists) merge a piece of a few byte runs by runs and a longer piece of 4 KiB or more
by rank-ordered buckets (native/bpe_run_merge.c, bpe_bucket_merge.c, with tk_list_rule), as tiktoken's
vocabularies do; before, they took the heap at 0.2-0.4 s a MB. Pieces of 129 bytes to 4 KiB take the medium merge
(native/bpe_medium_merge.c) under these lists and tiktoken's rule alike: text of many of them was the heap's too.
The native module counts all three (private), so these tests see the path, not only the ids. Random lists of both
kinds hold the merges to the pair table's heap (pair_merge.c, itself held to the Python reference in
test_native_pair_merge.py) on huge and medium pieces.
"""

from __future__ import annotations

import functools
import json
import random
import string
from array import array
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokend
from support import tokenizer_json as files
from tokend.engine import Encoding, _native, parse_tokenizer_json, read_tekken_json
from tokend.engine._native import BpeCore

_SIZE = 65_536  # bytes a piece: past the bucket merge's 4 KiB (_native.BUCKET_PIECE), small enough for every reference
_SINGLE_BYTES = {bytes([b]): b for b in range(256)}


def _pieces(size: int) -> dict[str, str]:
    rng = random.Random(18)
    return {
        "repeated letter": "a" * size,
        "random letters": "".join(rng.choices(string.ascii_letters, k=size)),
        "random lowercase": "".join(rng.choices(string.ascii_lowercase, k=size)),
        "spaces": " " * size,
        "newlines": "\n" * size,
        "repeated emoji": "\N{GRINNING FACE}" * (size // 4),
        "U+1D160": "\U0001D160" * (size // 4),
    }


PIECES = _pieces(_SIZE)
RUNS = {"repeated letter", "spaces", "newlines"}  # one byte repeated: the run merge's
BYTE_LEVEL = {
    "llama3": files.llama3_tokenizer_json,
    "qwen3": files.qwen3_tokenizer_json,
    "deepseek-v3-style": files.deepseek_v3_style_tokenizer_json,
    "gpt2": files.gpt2_tokenizer_json,
}


@functools.lru_cache(maxsize=None)
def _byte_level(name: str):
    import tokenizers

    document = BYTE_LEVEL[name]()
    return Encoding.from_model(parse_tokenizer_json(document, name=name).model), tokenizers.Tokenizer.from_str(json.dumps(document))


def _counters_over(call):
    before = _native._merge_counters()
    result = call()
    after = _native._merge_counters()
    return result, {key: after[key] - before[key] for key in after}


@pytest.mark.parametrize("kind", sorted(PIECES))
@pytest.mark.parametrize("name", sorted(BYTE_LEVEL))
def test_byte_level_lists_merge_a_huge_piece_as_tiktokens_rule_does(name, kind):
    ours, oracle = _byte_level(name)
    text = PIECES[kind]
    ids, counted = _counters_over(lambda: ours.encode_ordinary(text))
    assert ids == oracle.encode(text, add_special_tokens=False).ids
    if kind in RUNS:
        assert counted["run_merges"] >= 1 and counted["bucket_merges"] == 0, counted
    else:
        assert (counted["bucket_merges"], counted["bucket_fallbacks"]) == (1, 0), counted
    assert ours.count_ordinary(text) == len(ids)


def _medium_words(seed: int) -> tuple[str, int]:
    """Words of random letters, most a piece of 129 to _native.BUCKET_PIECE - 1 bytes (" " and the letters), and
    how many are that under every byte-level split: the medium merge's pieces (native/bpe_medium_merge.c).
    Lowercase, few letters (merge-rich) and both cases (o200k_base splits those at each change of case), at
    lengths about the short merge's 128 bytes and the buckets' start."""
    rng = random.Random(seed)
    lengths = [128, 129, 130, 255, 256, 300, 511, 512, 1_000, 2_047, _native.BUCKET_PIECE - 2]
    words = ["".join(rng.choices(alphabet, k=length)) for length in lengths
             for alphabet in (string.ascii_lowercase, string.ascii_letters, "etaoin")]
    return " " + " ".join(words), 2 * sum(1 for length in lengths if length >= 128)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", *sorted(BYTE_LEVEL)])
def test_pieces_between_the_short_merge_and_the_buckets_take_the_medium_merge(name):
    # Text of many such pieces cost 0.09-0.15 s a MB through the heap, three to four times a huge piece's
    # (docs/decisions.md, "Pieces of 129 bytes to 4 KiB"): each piece now takes the medium merge, not the heap
    # and not the buckets, with the reference's ids.
    if name in BYTE_LEVEL:
        ours, oracle = _byte_level(name)
        reference = lambda text: oracle.encode(text, add_special_tokens=False).ids  # noqa: E731
    else:
        import tiktoken

        ours, reference = tokend.get_encoding(name), tiktoken.get_encoding(name).encode_ordinary
    text, n_words = _medium_words(25)
    ids, counted = _counters_over(lambda: ours.encode_ordinary(text))
    assert ids == reference(text)
    assert counted["medium_merges"] >= n_words and counted["bucket_merges"] == 0, counted
    assert ours.count_ordinary(text) == len(ids)


@functools.lru_cache(maxsize=None)
def _tekken():
    import mistral_common
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    path = Path(mistral_common.__file__).parent / "data" / "tekken_240718.json"
    return Encoding.from_model(read_tekken_json(path.read_bytes(), name="tekken").model), Tekkenizer.from_file(path)


@pytest.mark.parametrize("kind", sorted(PIECES))
def test_tekken_huge_pieces_match_mistral_common(kind):
    ours, oracle = _tekken()
    text = PIECES[kind]
    assert ours.encode_ordinary(text) == oracle.encode(text, bos=False, eos=False)


@pytest.mark.parametrize("kind", sorted(PIECES))
@pytest.mark.parametrize("model_name", ["mistral_v1", "mistral_v3", "llama2_like", "botchan_unigram", "kyoto_unigram", "unigram"])
def test_sentencepiece_huge_segments_match_sentencepiece(model_name, kind):
    from tests.engine.sentencepiece.models import oracle, ours

    text = PIECES[kind]
    assert ours(model_name).encode_ordinary(text) == oracle(model_name).encode(text)


def _core(ids, merges, *, merge_index=True):
    return BpeCore(ids, None, cache_capacity=0, merges=array("I", [value for merge in merges for value in merge]),
                   merge_index=merge_index)


def _every_split_in_order(ids: dict[bytes, int]) -> list[tuple[int, int, int]]:
    merges = [(ids[token[:at]], ids[token[at:]], token_id) for token, token_id in ids.items()
              for at in range(1, len(token)) if token[:at] in ids and token[at:] in ids]
    return sorted(merges, key=lambda merge: (merge[2], merge[0]))


@st.composite
def _lists_and_huge_pieces(draw):
    """A vocabulary over two or three letters, as every split in order (Llama 3's kind; ids in creation order or
    shuffled, which sends some pieces back to the heap) or one merge per token in merged-id order (a trained
    list), and pieces of 16-20 KB: random letters (the buckets) and long runs of one letter (the runs); and a piece
    of random letters of 129 to _native.BUCKET_PIECE - 1 bytes (the medium merge)."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))  # one draw: a piece is 16 KB of choices
    alphabet = b"ab" if draw(st.booleans()) else b"abc"
    every_split, in_order = draw(st.booleans()), draw(st.booleans())
    ids = dict(_SINGLE_BYTES)
    tokens = [bytes([letter]) for letter in alphabet]
    free = list(range(256, 256 + 400))
    if every_split and not in_order:
        rng.shuffle(free)
    for _ in range(draw(st.integers(1, 60))):
        token = rng.choice(tokens) + rng.choice(tokens)
        if len(token) <= 8 and token not in ids:
            ids[token] = free.pop(0)
            tokens.append(token)
    merges = _every_split_in_order(ids)
    if not every_split:
        one = {}
        for left, right, merged in sorted(merges, key=lambda merge: (merge[2], rng.random())):
            one.setdefault(merged, (left, right, merged))  # one split of each token, picked at random
        merges = sorted(one.values(), key=lambda merge: merge[2])
    runs = []
    while sum(map(len, runs)) < 17_000:
        runs.append(bytes([rng.choice(alphabet)]) * rng.choice([1, 2, 3, 64, 300, 2_000]))
    pieces = [bytes(rng.choice(alphabet) for _ in range(rng.randint(16_384, 20_000))), b"".join(runs),
              bytes([alphabet[0]]) * rng.randint(129, 5_000),
              bytes(rng.choice(alphabet) for _ in range(rng.randint(129, _native.BUCKET_PIECE - 1)))]
    return ids, merges, pieces


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_lists_and_huge_pieces())
def test_indexed_lists_merge_huge_pieces_as_the_pair_tables_heap(case):
    ids, merges, pieces = case
    core, table = _core(ids, merges), _core(ids, merges, merge_index=False)
    assert core.merge_path in ("pairs-all-splits", "pairs-by-id")
    for piece in pieces:
        assert core.merge(piece) == table.merge(piece)
