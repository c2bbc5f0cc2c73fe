"""Seeded differential fuzzing of ml18's and count18's engine changes against each family's reference library.

- Short pieces past their home slot (piece_batch.h tk_short_find_after) and the short table at load <= 1/2:
  texts mixing every script (Devanagari, Thai, Malayalam, Hebrew, Arabic with their marks, CJK, Cyrillic,
  emoji, digits, punctuation runs) through a fresh Encoding until its table is full and on after that, and
  through the long-lived one; encode_ordinary and count in either order (the first one merges and adds).
- Unseen short pieces grouped across batches (module.c): a pool of 1-200 unseen pieces placed among tokens
  from one in 200 pieces to every piece (groups of eight different ones, sixteen with repeats, spanning many
  batches of 64, the text's end mid-group), with special tokens between them (`allowed_special="all"`: each
  stretch of text ends its group before the special token's id).
- Pieces of a few long byte runs (bpe_run_merge.c, from 129 bytes now): runs of spaces, tabs, newlines, "=",
  "-", letters, with short motifs between, at 127-131 and 16,382-16,386 bytes and anywhere in 100-20,000.
- The same texts through encode_ordinary_batch and count_batch on 1 and 2 threads (batch_encode.c's loop,
  which merges a short piece at a time and adds it to the same table).

Run as a script (`PYTHONPATH=.:tests python tests/engine/test_issue18_groups_runs_fuzz.py SECONDS`), the same
generators go on with new seeds until the time is up. Helper fuzz09 ran generators like these on main at 4024eaa for
19 minutes on one core (cl100k_base, o200k_base, r50k_base, p50k_base, Llama 3, Qwen 3): 2,140 rounds, ~1.1 GB
of text through encode_ordinary / count (count first half the time), 132 fresh tables filled to the end,
~53 MB through encode_ordinary_batch and count_batch on 1 and 2 threads, ~24 MB with special tokens, big and
small texts on three threads of one Encoding: no difference.
"""

from __future__ import annotations

import random
import string

import pytest
import tiktoken

from support.fuzz_references import OPENAI, TOKENIZER_JSON, chars_up_to, model_and_reference
from tokend.engine import Encoding
from tokend.engine.text_parts import SpecialText, count_parts, encode_parts, native_core

_OPENAI, _TOKENIZER_JSON, _model = OPENAI, TOKENIZER_JSON, model_and_reference


def _fresh(name: str) -> Encoding:
    """A new Encoding of the same model whose short table is built and holds tokens only: it is built once
    256 KiB of texts under 64 KiB have come, here a token repeated."""
    ours = Encoding.from_model(_model(name)[0].model)
    for _ in range(5):
        ours.encode_ordinary(" the" * 14_000)
    return ours


# ---- generators -----------------------------------------------------------------------------------------

_SCRIPTS = ("абвгдежзийклмнопрстуфхцчшщъыьэюяАБВГДЕЖЗ", "αβγδεζηθικλμνξοπρστυφχψω",
            "的一是不了人我在有他这中大来上国个到说们龘齉爨鬱", "가나다라마바사아자차카타파하한국어똠뷁",
            "กขคงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ\u0e31\u0e34\u0e35\u0e36\u0e37\u0e48\u0e49\u0e4a",
            "ابتثجحخدذرزسشصضطظعغفقكلمنهوي\u064b\u064c\u064d\u064e\u064f\u0650\u0651\u0652",
            "अआइईउऊएऐओऔकखगघङचछजझञटठडढणतथदधनपफबभम\u093f\u0940\u0941\u0942\u0947\u0948\u094b\u094d\u0902",
            "അആഇഈഉഊഎഏഐഒഓകഖഗഘങചഛജഝഞടഠഡഢണ\u0d3e\u0d3f\u0d40\u0d41\u0d46\u0d47\u0d4d",
            "אבגדהוזחטיכלמנסעפצקרשת\u05b0\u05b4\u05b7\u05b8\u05bc", "ぁあぃいぅうァアィイゥウカキクケコ",
            "𝒜𝒞𝒟𝓐𝓑𝔄𝔅𝕬𝖆𝗔𐐷𐐸𐑏", "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿœšž")  # fmt: skip
_EMOJI = ("😀", "😁", "🤣", "🚀", "🔥", "💯", "👍🏽", "🧑\u200d💻", "🇫🇷", "❤️", "✨", "👨\u200d👩\u200d👧\u200d👦", "🫠")
_MARKS = "\u0301\u0300\u0308\u0327\u0303\u20dd\u0651\u093f\u0e31\u05b7\u0d4d\u0e48"
_PUNCTUATION = ".,;:!?'\"()[]{}<>-_/=+*&^%$#@~`|\\…—«»、。"
_SEPARATORS = (" ", " ", " ", "\n", ", ", ". ", "\t", "  ", "-", "'s ", " 12 ", "\u3000", "!", "", "", "\r\n", "\n\n")
_SPECIALS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>", "<|endo", "<|")
_MARKED = [c + m for c in string.ascii_letters + _SCRIPTS[11] + _SCRIPTS[0] for m in ("", "", *_MARKS)]
_ALL = string.ascii_letters + "".join(_SCRIPTS) + "".join(_EMOJI) + _MARKS + string.digits + _PUNCTUATION


def word(rng: random.Random, low: int, high: int) -> str:
    """About `low`-`high` bytes of one kind (ASCII letters, one script with its marks, emoji, punctuation,
    digits of three systems, letters with combining marks, everything)."""
    target, draw = rng.randint(low, high), rng.random()
    if draw < 0.25:
        pool = string.ascii_letters if rng.random() < 0.5 else string.ascii_lowercase
    elif draw < 0.65:
        pool = rng.choice(_SCRIPTS)
    elif draw < 0.72:
        pool = _EMOJI
    elif draw < 0.8:
        pool = _PUNCTUATION
    elif draw < 0.85:
        pool = string.digits + "٠١٢٣٤٥٦٧٨٩०१२३"
    elif draw < 0.93:
        pool = _MARKED
    else:
        pool = _ALL
    return chars_up_to(rng, pool, target)


def mixed_scripts(rng: random.Random, size: int) -> str:
    """About `size` bytes of words of every script and kind, now and then a run of spaces, "=" or newlines."""
    parts, n = [], 0
    low, high = rng.choice([(1, 6), (2, 15), (4, 15), (1, 30)])
    while n < size:
        part = word(rng, low, high) + rng.choice(_SEPARATORS)
        if rng.random() < 0.03:
            part += rng.choice([" " * rng.randint(2, 40), "=" * rng.randint(2, 200), "\n" * rng.randint(2, 20)])
        parts.append(part)
        n += len(part.encode())
    return "".join(parts)


_COMMON = (" the", " and", " of", ",", ".", " to", "\n", " a", " in", " is")


def repeated_unseen(rng: random.Random, pieces: int) -> str:
    """`pieces` pieces: common tokens, and unseen short pieces of a pool of 1-200 (sparse to every piece), so
    that groups repeat pieces, span batches, and the text may end mid-group."""
    pool = []
    for _ in range(rng.choice([1, 2, 3, 5, 7, 8, 9, 12, 16, 17, 30, 200])):
        kind = rng.random()
        if kind < 0.5:
            pool.append(" " + "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 14))))
        elif kind < 0.8:
            pool.append((" " if rng.random() < 0.5 else "") + word(rng, 3, 14).strip())
        else:
            pool.append("".join(rng.choice("qxzjvkw") for _ in range(rng.randint(2, 15))))
    density = rng.choice([0.005, 0.02, 0.05, 0.2, 0.5, 0.9, 1.0])
    text = [rng.choice(pool) if rng.random() < density else rng.choice(_COMMON) for _ in range(pieces)]
    return "".join(text) + (rng.choice(pool) if rng.random() < 0.3 else "")


_RUN_ALPHABETS = ([" ", "\t", "\n"], ["=", "-", "*", "#", ".", "_", "~", "+", "/"], [*"aezbxyqAZ", "я", "ab"],
                  [" ", "=", "-", "\t", "\n", "a", "e", "z", "*", "#", ".", "_", "~", "0", "Z", "\r\n", "ab", "я"])
_MOTIFS = ("=-", "-=", "ab", "*", "==", "a", "\t ", " \n", "=+=", "xy", "--", "aa")
_BORDERS = (127, 128, 129, 130, 131, 192, 255, 256, 257, 8_192, 16_382, 16_383, 16_384, 16_385, 16_386)


def byte_runs(rng: random.Random) -> str:
    """A piece of 100-20,000 bytes of 1-40 long runs of one byte (or one short motif), often at the merges'
    borders (128/129: the short merge and the runs; 16,383/16,384: the runs and the buckets), short motifs
    between runs now and then, a word or nothing around it."""
    total = rng.choice(_BORDERS) + rng.randint(-2, 2) if rng.random() < 0.4 else rng.randint(100, 20_000)
    n_runs = rng.choice([1, 1, 2, 2, 3, 4, 6, 10, 40])
    alphabet = rng.choice(_RUN_ALPHABETS)
    cuts = sorted(rng.sample(range(1, total), min(n_runs - 1, total - 1))) if n_runs > 1 else []
    bounds, parts = [0, *cuts, total], []
    for start, end in zip(bounds, bounds[1:]):
        char = rng.choice(alphabet)
        parts.append(char * max(1, (end - start) // len(char.encode())))
        if rng.random() < 0.3:
            parts.append(rng.choice(_MOTIFS) * rng.randint(1, 3))
    before, after = rng.choice(["", "x", " hello", "foo=", "\n", "a "]), rng.choice(["", "x", " end", "\n", "!", " "])
    return before + "".join(parts) + after


def with_specials(rng: random.Random, size: int) -> str:
    parts, n = [], 0
    while n < size:
        if rng.random() < 0.7:
            part = mixed_scripts(rng, rng.randint(1, 400))
        else:
            part = repeated_unseen(rng, rng.randint(1, 150))
        parts.append(part)
        if rng.random() < 0.5:
            parts.append(rng.choice(_SPECIALS))
        n += len(part.encode())
    return "".join(parts)


# ---- checks ---------------------------------------------------------------------------------------------


def check_text(ours: Encoding, reference_ids, text: str, count_first: bool) -> None:
    """encode_ordinary and count, the first of them on pieces the table may not hold yet."""
    expected = reference_ids(text)
    if count_first:
        assert ours.count(text) == len(expected), text[:200]
    same = ours.encode_ordinary(text) == expected  # not asserted on the lists: pytest's diff of long lists is slow
    assert same, text[:200]
    if not count_first:
        assert ours.count(text) == len(expected), text[:200]


def check_batch(ours: Encoding, reference_ids, texts: list[str]) -> None:
    expected = [reference_ids(text) for text in texts]
    for threads in (1, 2):
        same = ours.encode_ordinary_batch(texts, num_threads=threads) == expected
        assert same, threads
        assert ours.count_batch(texts, num_threads=threads) == [len(ids) for ids in expected]


def check_specials(ours: Encoding, name: str, text: str) -> None:
    expected = tiktoken.get_encoding(name).encode(text, allowed_special="all")
    same = ours.encode(text, allowed_special="all") == expected
    assert same, text[:200]
    assert ours.count(text, allowed_special="all") == len(expected), text[:200]


@pytest.mark.parametrize("name", _OPENAI + _TOKENIZER_JSON)
def test_mixed_scripts_until_the_short_table_is_full_and_after(name):
    # A fresh table: every merged piece is added after the tokens (past its home slot more often than not
    # once the table fills), until max_added; then the same loop with nothing added.
    ours, reference_ids = _model(name)
    fresh, rng = _fresh(name), random.Random(f"fill-{name}")
    stats = fresh._core.short_table_stats()
    assert stats["state"] == "ready" and stats["added"] == 0
    added = [0]
    for round_ in range(60):  # until it adds no more: max_added pieces, or no room for more ids
        check_text(fresh, reference_ids, mixed_scripts(rng, 60_000), count_first=round_ % 2 == 0)
        added.append(fresh._core.short_table_stats()["added"])
        if added[-1] == added[-2]:
            break
    assert added[-1] == added[-2] > 0
    for round_ in range(2):
        check_text(fresh, reference_ids, mixed_scripts(rng, 20_000), count_first=round_ == 0)
        check_text(fresh, reference_ids, repeated_unseen(rng, 2_000), count_first=round_ == 1)
    check_text(ours, reference_ids, mixed_scripts(rng, 30_000), count_first=True)
    check_text(ours, reference_ids, mixed_scripts(rng, 100_000), count_first=False)  # no GIL, the worker cache


@pytest.mark.parametrize("name", _OPENAI + _TOKENIZER_JSON)
def test_unseen_short_pieces_repeated_within_and_across_batches(name):
    ours, reference_ids = _model(name)
    rng = random.Random(f"repeats-{name}")
    for round_ in range(12):
        fresh = _fresh(name)  # every pool piece unseen
        texts = [repeated_unseen(rng, rng.choice([1, 7, 8, 9, 16, 17, 63, 64, 65, 500, 3_000])) for _ in range(3)]
        for k, text in enumerate(texts):
            check_text(fresh, reference_ids, text, count_first=(round_ + k) % 2 == 0)
        check_batch(_fresh(name) if round_ % 3 == 0 else ours, reference_ids, texts)


@pytest.mark.parametrize("name", _OPENAI + _TOKENIZER_JSON)
def test_pieces_of_a_few_long_byte_runs(name):
    ours, reference_ids = _model(name)
    rng = random.Random(f"runs-{name}")
    texts = [byte_runs(rng) for _ in range(40)]
    for char in (" ", "=", "-", "\t", "\n", "a", "я"):  # one run, every length about both borders
        texts += [char * length for length in (*range(126, 134), *range(16_381, 16_388))]
    for k, text in enumerate(texts):
        check_text(ours, reference_ids, text, count_first=k % 2 == 0)
    check_batch(ours, reference_ids, texts[:40])


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "p50k_base"])
def test_special_tokens_between_unseen_pieces(name):
    ours = _model(name)[0]
    rng = random.Random(f"specials-{name}")
    fresh = _fresh(name)
    for size in (300, 5_000, 50_000, 300, 5_000):
        text = with_specials(rng, size)
        check_specials(fresh, name, text)
        check_specials(ours, name, text)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "r50k_base"])
def test_text_given_as_parts_with_unseen_pieces(name):
    # A chat's rendered parts (text_parts.c): each text part's group ends with it, before the next part's ids
    # or a special token's; one sink for them all, counted per run.
    rng, reference = random.Random(f"parts-{name}"), tiktoken.get_encoding(name)
    specials = sorted(reference.special_tokens_set)
    for round_ in range(20):
        fresh = _fresh(name)
        assert native_core(fresh) is fresh._core  # the C walk, not part by part
        parts = []
        for _ in range(rng.randint(1, 30)):
            draw = rng.random()
            if draw < 0.2:
                parts.append(SpecialText(rng.choice(specials)))
            elif draw < 0.6:
                parts.append(repeated_unseen(rng, rng.choice([1, 3, 8, 17, 70, 300])))
            else:
                parts.append(mixed_scripts(rng, rng.choice([10, 200, 3_000])))
        ends = sorted({*rng.sample(range(1, len(parts) + 1), rng.randint(1, len(parts))), len(parts)})
        expected, counts, start = [], [], 0
        for end in ends:
            run = [reference.encode_single_token(part) if type(part) is SpecialText else reference.encode_ordinary(part)
                   for part in parts[start:end]]
            run = [[ids] if isinstance(ids, int) else ids for ids in run]
            expected += [i for ids in run for i in ids]
            counts.append(sum(len(ids) for ids in run))
            start = end
        if round_ % 2:
            assert count_parts(fresh, parts, ends) == counts
        same = encode_parts(fresh, parts, ends) == (expected, counts)
        assert same, parts
        assert count_parts(fresh, parts, ends) == counts


if __name__ == "__main__":  # the long run: new seeds until the time is up
    from support.fuzz_references import long_run

    def one_round(rounds: int, name: str, start: float) -> None:
        rng = random.Random(f"long-{rounds}-{start}")
        ours, reference_ids = _model(name)
        fresh = _fresh(name)
        for k in range(6):
            size = rng.choice([2_000, 60_000, 120_000])
            check_text(fresh if k % 2 else ours, reference_ids, mixed_scripts(rng, size), rng.random() < 0.5)
            check_text(fresh, reference_ids, repeated_unseen(rng, rng.randint(1, 3_000)), rng.random() < 0.5)
            check_text(ours, reference_ids, byte_runs(rng), rng.random() < 0.5)
        makers = [lambda: mixed_scripts(rng, 3_000), lambda: repeated_unseen(rng, 300), lambda: byte_runs(rng)]
        check_batch(ours, reference_ids, [rng.choice(makers)() for _ in range(rng.randint(1, 30))])
        if name in ("cl100k_base", "o200k_base", "p50k_base"):
            check_specials(fresh, name, with_specials(rng, rng.choice([300, 5_000, 50_000])))

    long_run(one_round)
