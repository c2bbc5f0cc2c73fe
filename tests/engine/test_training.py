"""Training: minbpe's worked examples, determinism, incremental counts against a brute-force recount."""

from __future__ import annotations

from collections import Counter

import pytest
import regex

from tokend.engine import GPT2_PATTERN, GPT4_PATTERN, train


def test_minbpe_basic_example():
    # minbpe tests/test_tokenizer.py: BasicTokenizer trained to 256 + 3 on "aaabdaaabac".
    result = train("aaabdaaabac", 256 + 3, pattern=None)
    assert result.encoding.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert result.encoding.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def _reference_merges(texts, vocab_size, pattern):
    """Brute force: recount all pairs after every merge (minbpe's loop), same tie-break as ours."""
    chunks = Counter()
    for text in texts:
        chunks.update(regex.findall(pattern, text))
    words = {tuple(chunk.encode()): count for chunk, count in chunks.items()}
    merges = {}
    vocab = {i: bytes([i]) for i in range(256)}
    for new_id in range(256, vocab_size):
        stats = Counter()
        for ids, count in words.items():
            for pair in zip(ids, ids[1:]):
                stats[pair] += count
        if not stats:
            break
        pair = max(stats, key=lambda p: (stats[p], p[0], p[1]))
        merges[pair] = new_id
        vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
        new_words = Counter()
        for ids, count in words.items():
            out, i = [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                    out.append(new_id)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            new_words[tuple(out)] += count
        words = new_words
    return merges


@pytest.mark.parametrize("pattern", [GPT4_PATTERN, GPT2_PATTERN])
def test_incremental_counts_equal_full_recount(pattern):
    texts = ["The quick brown fox jumps over the lazy dog. " * 3, "the theme of the thesis: 1234 12 1", "aaaa bbbb abab"]
    assert train(texts, 320, pattern=pattern).merges == _reference_merges(texts, 320, pattern)


def test_deterministic_and_reports_progress():
    calls = []
    texts = ["lorem ipsum dolor sit amet " * 10]
    first = train(texts, 280, progress=lambda done, total: calls.append((done, total)))
    second = train(texts, 280)
    assert first.merges == second.merges
    assert calls[0] == (1, 24) and calls == [(i, 24) for i in range(1, len(calls) + 1)]


def test_trained_encoding_round_trips_and_uses_specials():
    result = train(["some training text, with words and words"], 270, special_tokens={"<|end|>": 1000}, name="toy")
    enc = result.encoding
    assert enc.name == "toy" and enc.n_vocab == 1001
    ids = enc.encode("words<|end|>unseen ✓", allowed_special="all")
    assert ids[-1] != 1000 and 1000 in ids
    assert enc.decode(ids) == "words<|end|>unseen ✓"


def test_stops_early_when_no_pairs_left():
    result = train("ab", 300, pattern=None)
    assert result.merges == {(97, 98): 256}


@pytest.mark.parametrize("bad", [255, -1, "300", 256.0])
def test_vocab_size_validation(bad):
    with pytest.raises(ValueError, match="vocab_size"):
        train("abc", bad)


def test_special_token_inside_vocab_rejected():
    with pytest.raises(ValueError, match="<\\|end\\|>"):
        train("abc", 300, special_tokens={"<|end|>": 100})
