"""The batch calls on threads: `encode_batch`, `encode_ordinary_batch` and `count_batch(num_threads=n)` hand
the whole batch to the native core, which encodes it on worker threads with the GIL released. Held here to
the oracles (tiktoken; `tokenizers` for Hugging Face files) and to one text at a time, for any thread count,
with bad items named by index and concurrent batches on one Encoding. Speed is bench/threads.py's job."""

from __future__ import annotations

import functools
import json
import random
import threading

import pytest
import tokenizers

from support import tokenizer_json as files
from tests.corpus import corpus_texts, edge_cases
from tokend.engine import Encoding, parse_tokenizer_json
from tokend.errors import DisallowedSpecialTokenError

# Big enough that a batch gets several threads (16 KiB of text per thread at least), with long and empty items.
_TEXTS = corpus_texts(limit_bytes=300_000) + edge_cases() + ["", "x" * 70_000, " \n" * 9_000]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_ordinary_batch_matches_tiktoken_for_any_thread_count(enc, oracle, threads):
    expected = oracle.encode_ordinary_batch(_TEXTS, num_threads=2)
    assert enc.encode_ordinary_batch(_TEXTS, num_threads=threads) == expected
    assert enc.count_batch(_TEXTS, num_threads=threads, disallowed_special=()) == [len(ids) for ids in expected]


def test_encode_batch_with_special_tokens_matches_tiktoken(enc, oracle):
    texts = [text + "<|endoftext|>" + text[:50] if i % 3 == 0 else text for i, text in enumerate(_TEXTS[:200])]
    expected = oracle.encode_batch(texts, allowed_special="all")
    assert enc.encode_batch(texts, allowed_special="all", num_threads=2) == expected
    assert enc.count_batch(texts, allowed_special="all", num_threads=2) == [len(ids) for ids in expected]
    assert enc.encode_batch(texts, disallowed_special=(), num_threads=2) == oracle.encode_batch(texts, disallowed_special=())


def test_a_disallowed_special_token_is_reported_by_its_first_item(enc):
    # encode_batch checks before any work; count_batch's workers flag the texts and it checks those after
    texts = ["fine", "also fine " * 5_000, "here <|endoftext|> it is", "<|endoftext|>"]
    for method in (enc.encode_batch, enc.count_batch):
        with pytest.raises(DisallowedSpecialTokenError) as refused:
            method(texts, num_threads=2)
        assert refused.value.item == 2 and "batch item 2" in str(refused.value)
    with pytest.raises(DisallowedSpecialTokenError) as refused:  # a repaired lone surrogate does not hide one
        enc.count_batch(["a" * 20_000, "lone \ud800 <|endoftext|>", "b" * 20_000], num_threads=2)
    assert refused.value.item == 1


def test_count_batch_default_policy_with_token_prefixes_that_are_no_tokens(enc, oracle):
    # the workers flag every text holding "<|"; these hold no whole token, so they count as plain text
    near = ["<|", "a <|endof", "<|endoftext|", "|>", "<<||>>", "<|" * 9_000, "x<|fim_prefix |>y", "é<|ü"]
    texts = [text + near[i % len(near)] if i % 2 else text for i, text in enumerate(_TEXTS[:400])] + near
    texts = [text for text in texts if not any(token in text for token in enc.special_tokens_set)]
    assert len(texts) > 300 and sum("<|" in text for text in texts) > 100
    expected = [len(ids) for ids in oracle.encode_batch(texts)]  # tiktoken's default policy accepts them all
    for threads in (1, 2, 3):
        assert enc.count_batch(texts, num_threads=threads) == expected


def test_mixed_and_bad_items(enc, oracle):
    # lone surrogates are repaired as tiktoken does, in every item, whichever thread takes it
    texts = ["ok", "lone \ud800 surrogate " * 3_000, "", "pair \ud83d\ude00", "z" * 40_000]
    assert enc.encode_ordinary_batch(texts, num_threads=2) == oracle.encode_ordinary_batch(texts)
    assert enc.count_batch(texts, num_threads=2) == [len(ids) for ids in oracle.encode_ordinary_batch(texts)]
    with pytest.raises(TypeError, match=r"texts\[1\]: expected str, got bytes"):
        enc.encode_ordinary_batch(["a", b"b", "c"], num_threads=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_threads must be a positive int"):
            enc.encode_ordinary_batch(["a"], num_threads=bad)
    assert enc.encode_ordinary_batch([], num_threads=2) == [] and enc.count_batch((), num_threads=4) == []
    one = [oracle.encode_ordinary("hello world")]
    assert enc.encode_ordinary_batch(iter(["hello world"]), num_threads=2) == one
    assert enc.encode_batch(iter(["hello world"]), num_threads=2) == one  # an iterator is read once
    assert enc.count_batch((text for text in ["hello world"]), num_threads=2) == [len(one[0])]


def test_concurrent_batches_on_one_encoding(enc, oracle):
    """Batches from several Python threads at once share the core's tables and its pool of worker caches."""
    texts = corpus_texts(limit_bytes=120_000)
    expected = oracle.encode_ordinary_batch(texts)
    results: dict[int, list] = {}

    def run(index: int) -> None:
        results[index] = enc.encode_ordinary_batch(texts[index:] + texts[:index], num_threads=2)

    workers = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [results[index] for index in range(4)] == [expected[index:] + expected[:index] for index in range(4)]


def test_many_batches_back_to_back_from_several_threads(enc, oracle):
    """Each batch's end: the calling thread makes the lists of the last items as they finish and the other
    threads, once done with the batch, end on their own (detached): batch after batch, from several Python
    threads at once, every item still gets its own ids."""
    texts = [text for text in corpus_texts(limit_bytes=200_000) if "<|" not in text]
    expected = oracle.encode_ordinary_batch(texts)
    mismatches: list[tuple[int, int]] = []

    def run(seed: int) -> None:
        rng = random.Random(seed)
        for round_index in range(40):
            chosen = [rng.randrange(len(texts)) for _ in range(rng.randint(2, 40))]
            threads = rng.choice((2, 3, 4))
            batch = [texts[index] for index in chosen]
            if round_index % 2:
                ok = enc.count_batch(batch, num_threads=threads) == [len(expected[index]) for index in chosen]
            else:
                ok = enc.encode_ordinary_batch(batch, num_threads=threads) == [expected[index] for index in chosen]
            if not ok:
                mismatches.append((seed, round_index))

    workers = [threading.Thread(target=run, args=(seed,)) for seed in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert mismatches == []


def test_a_list_changed_by_another_thread_during_the_batch(enc):
    """The core encodes a snapshot of the list: texts another thread replaces (and frees) meanwhile are kept."""
    versions = [[word * 10_000 for _ in range(8)] for word in ("alpha ", "omega ")]  # equal sizes: memory is reused
    expected = [enc.encode_ordinary_batch(texts, num_threads=1) for texts in versions]
    texts = list(versions[0])
    stop = threading.Event()

    def swap() -> None:
        version = 0
        while not stop.is_set():
            version ^= 1
            texts[:] = [text.encode().decode() for text in versions[version]]  # fresh objects; the old ones die

    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        results = [enc.encode_ordinary_batch(texts, num_threads=2) for _ in range(6)]
    finally:
        stop.set()
        swapper.join()
    assert all(result in expected for result in results)


def test_the_batch_reports_its_piece_cache_work(enc):
    before = enc.piece_cache_stats()
    enc.count_batch(["an unusualword zqxjkvb " * 2_000, "another qzvbkxj " * 2_000], num_threads=2)
    after = enc.piece_cache_stats()
    assert after.hits + after.misses > before.hits + before.misses
    assert after.capacity == before.capacity  # the shared cache's bound; worker caches are a quarter of it each


# Hugging Face families: a normalizer and added tokens (qwen3), a prefix space (gpt2-prefix-space), a pair
# rule without the whole-piece shortcut (llama3 has it; qwen3 does not), and Python splitting (lookbehind).
_HF = {
    "qwen3": files.qwen3_tokenizer_json,
    "llama3": files.llama3_tokenizer_json,
    "gpt2-prefix-space": functools.partial(files.gpt2_tokenizer_json, add_prefix_space=True),
    "gpt2-lookbehind": functools.partial(
        files.gpt2_with_pre_tokenizer, [files.split_step(r"(?<=[a-z])\d+"), files.byte_level_step()]),
}


@functools.lru_cache(maxsize=None)
def _hf(name: str) -> tuple[Encoding, tokenizers.Tokenizer]:
    document = _HF[name]()
    return Encoding.from_model(parse_tokenizer_json(document, name=name).model), tokenizers.Tokenizer.from_str(json.dumps(document))


@pytest.mark.parametrize("name", sorted(_HF))
def test_hugging_face_families_batch_like_tokenizers(name):
    enc, oracle = _hf(name)
    specials = sorted(enc.special_tokens)
    texts = _TEXTS[:150] + [f"Hi {specials[0]} there<think>x</think>{specials[-1]}!", "e\u0301 cafe\u0301 " * 3_000]
    expected = [encoding.ids for encoding in oracle.encode_batch(texts, add_special_tokens=False)]
    assert enc.encode_batch(texts, allowed_special="all", num_threads=2) == expected
    assert enc.count_batch(texts, allowed_special="all", num_threads=3) == [len(ids) for ids in expected]
    ordinary = [enc.encode_ordinary(text) for text in texts]
    assert enc.encode_ordinary_batch(texts, num_threads=2) == ordinary
    assert enc.count_batch(texts, disallowed_special=(), num_threads=2) == [len(ids) for ids in ordinary]
