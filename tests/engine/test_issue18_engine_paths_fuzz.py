"""Seeded differential fuzzing of issue 18's later engine paths against each family's reference library.

- Pieces of 1-4 bytes (short_merge.h tk_tiny_merge): every 2-byte piece, and every token of 3-4 bytes of the
  real vocabularies as it is and with one byte changed, through the merge rule alone against a plain list-loop
  oracle.
- The worker piece caches' skip of short pieces (tokend_native.h TK_CACHE_CHEAP_*): big texts whose short
  pieces are found rarely, then often, then rarely again (the skip turns on, off and on), through fresh
  Encodings (cold caches) and long-lived ones: encode, count, encode_batch on 1 and 2 threads.
- Batches of repeated, unseen and long texts, through encode_batch and count_batch on 1 and 2 threads.

Run as a script (`PYTHONPATH=.:tests python tests/engine/test_issue18_engine_paths_fuzz.py SECONDS`), the
same generators go on with new seeds until the time is up. When worst18's commits fd8362a..d521437 landed,
generators like these ran ~55 minutes on one core (helper fuzz08) against tiktoken (cl100k_base, o200k_base,
r50k_base, p50k_base) and `tokenizers` (Llama 3, Qwen 3) without a difference: ~7,500 huge pieces
(16 KiB - 2 MiB, ~1.6 GiB through each of encode, encode_ordinary, count, encode_batch on 1 and 2 threads),
~4,450 texts of short unseen pieces with the skip turning on and off (~830 MiB a method), ~14,600 batch
items (~820 MiB a method), ~6,700 pieces of random bytes through encode_piece and merge (~870 MiB), and
1.2 million pieces of 2-4 bytes through the merge.
"""

from __future__ import annotations

import itertools
import random
import string

import pytest
import tiktoken

from support.fuzz_references import OPENAI, TOKENIZER_JSON, chars_up_to, model_and_reference
from tokend.engine import Encoding

_OPENAI, _TOKENIZER_JSON, _model = OPENAI, TOKENIZER_JSON, model_and_reference


def _fresh(name: str) -> Encoding:
    """A new Encoding of the same model: its own, empty caches (shared and worker)."""
    return Encoding.from_model(_model(name)[0].model)


# ---- generators -----------------------------------------------------------------------------------------

_SCRIPTS = ("абвгдежзийклмнопрстуфхцчшщъыьэюя", "αβγδεζηθικλμνξοπρστυφχψω", "的一是不了人我在有他这中大来上国个到说们",
            "가나다라마바사아자차카타파하한국어", "àáâãäåæçèéêëìíîïñòóôõöøùúûüý", "กขคงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮ",
            "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "अआइईउऊएऐओऔकखगघङचछजझञ", "𝒜𝒞𝒟𝓐𝓑𝔄𝔅𝕬𝖆𝗔𐐷𐐸𐑏")  # fmt: skip
_EMOJI = "😀😁😂🤣😃😄😅😆😉😊🚀🔥💯🎉👍🏽🧑‍💻🇫🇷❤️✨⭐"
_MARKS = "\u0301\u0300\u0308\u0327\u0303\u20dd\u0651\u093f\u0e31\u05b7"
_PUNCTUATION = ".,;:!?'\"()[]{}<>-_/=+*&^%$#@~`|\\"
_SEPARATORS = [" ", " ", " ", "\n", ", ", ". ", "\t", "  ", "-", "'s ", " 12 ", "\u3000", "!", "", ""]


def short_word(rng: random.Random, low: int, high: int) -> str:
    """A word of about `low`-`high` bytes of one kind (ASCII letters, one script, emoji, punctuation, letters
    with combining marks, a mix); the pattern decides where the pieces really end."""
    target, draw = rng.randint(low, high), rng.random()
    if draw < 0.35:
        pool = string.ascii_letters if rng.random() < 0.5 else string.ascii_lowercase
    elif draw < 0.6:
        pool = rng.choice(_SCRIPTS)
    elif draw < 0.7:
        pool = _EMOJI
    elif draw < 0.78:
        pool = _PUNCTUATION
    elif draw < 0.9:
        pool = [c + m for c in string.ascii_letters + _SCRIPTS[4] for m in ("", "", *_MARKS)]
    else:
        pool = string.ascii_letters + "".join(_SCRIPTS) + _EMOJI + _MARKS + string.digits
    return chars_up_to(rng, pool, target)


def short_words(rng: random.Random, count: int, low: int, high: int) -> str:
    return "".join(short_word(rng, low, high) + rng.choice(_SEPARATORS) for _ in range(count))


def hit_rate_schedule(rng: random.Random, low: int, high: int, kinds: list[tuple[str, int]] | None = None) -> str:
    """Unseen words (the cache finds almost none: its short pieces skip it for 16,384 pieces), recurring ones
    (found again once it looks), unseen again...: `kinds` as [("rare" | "often" | "mixed", words)], by default
    drawn with lengths about the skip's window (1,024 lookups) and length (16,384 pieces)."""
    recurring = [short_word(rng, low, high) + " " for _ in range(rng.randint(5, 300))]
    if kinds is None:
        order = rng.choice([("rare", "often", "rare"), ("often", "rare", "often", "rare"),
                            ("rare", "often", "rare", "often", "rare"), ("mixed", "often", "rare")])
        kinds = [(kind, rng.choice([300, 1000, 1024, 1100, 2048, 5000, 16384, 17000, rng.randint(100, 20000)]))
                 for kind in order]
    segments = []
    for kind, n in kinds:
        if kind == "rare":
            segments.append(short_words(rng, n, low, high))
        elif kind == "often":
            segments.append("".join(rng.choice(recurring) for _ in range(n)))
        else:  # about the 1-in-16 line that turns the skip on
            rate = rng.choice([0.03, 0.06, 0.0625, 0.07, 0.1])
            segments.append("".join(rng.choice(recurring) if rng.random() < rate else
                                    short_word(rng, low, high) + rng.choice(_SEPARATORS) for _ in range(n)))
    return "".join(segments)


def long_letters(rng: random.Random, size: int) -> str:
    """About `size` bytes of letters: one piece for most patterns (o200k_base cuts where the case changes)."""
    draw = rng.random()
    if draw < 0.3:
        return "".join(rng.choices(string.ascii_lowercase, k=size))
    if draw < 0.5:
        return "".join(rng.choices(string.ascii_letters, k=size))
    if draw < 0.7:  # a motif with noise
        motif = "".join(rng.choices(string.ascii_lowercase[: rng.randint(2, 8)], k=rng.randint(1, 24)))
        chars = list((motif * (size // len(motif) + 1))[:size])
        for _ in range(rng.randint(0, size // 100)):
            chars[rng.randrange(size)] = rng.choice(string.ascii_lowercase)
        return "".join(chars)
    script, rate = rng.choice(_SCRIPTS), rng.choice([0.01, 0.1, 0.5])  # multi-byte letters mixed in
    return "".join(rng.choice(script) if rng.random() < rate else rng.choice(string.ascii_lowercase)
                   for _ in range(size // 2))


def batch_texts(rng: random.Random) -> list[str]:
    texts: list[str] = []
    for _ in range(rng.randint(1, 40)):
        draw = rng.random()
        low, high = rng.choice([(2, 4), (1, 15), (6, 15)])
        if draw < 0.3 and texts:
            texts.append(rng.choice(texts))  # the same text again
        elif draw < 0.5:
            texts.append(short_words(rng, rng.choice([1, 5, 50, 500, 3000]), low, high))
        elif draw < 0.62:  # rare words, recurring ones, rare again (within a batch item: its worker's cache)
            kinds = [("rare", rng.randint(500, 3000)), ("often", rng.randint(500, 3000)),
                     ("rare", rng.randint(100, 2000))]
            texts.append(hit_rate_schedule(rng, low, high, kinds))
        elif draw < 0.75:
            texts.append(long_letters(rng, rng.randint(100, 40_000)))
        elif draw < 0.85:
            common = [short_word(rng, 1, 15) + " " for _ in range(30)]
            texts.append("".join(rng.choice(common) for _ in range(rng.randint(10, 3000))))
        else:
            texts.append(rng.choice(["", "a", " ", "hello world", "😀", "e\u0301"]))
    return texts


# ---- checks ---------------------------------------------------------------------------------------------


def _list_loop_merge(piece: bytes, ranks) -> list[int]:
    """tiktoken's rule the plain way (no heap, no links): merge the leftmost lowest-ranked adjacent pair."""
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        ranked = [(ranks.get(a + b), i) for i, (a, b) in enumerate(zip(parts, parts[1:])) if a + b in ranks]
        if not ranked:
            break
        _, i = min(ranked)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return [ranks[part] for part in parts]


def check_text(ours: Encoding, reference_ids, text: str) -> None:
    expected = reference_ids(text)
    assert ours.encode(text, disallowed_special=()) == expected, text[:80]
    assert ours.encode_ordinary(text) == expected, text[:80]
    assert ours.count(text) == len(expected), text[:80]
    for threads in (1, 2):
        assert ours.encode_batch([text], num_threads=threads, disallowed_special=()) == [expected], text[:80]


def check_batch(ours: Encoding, reference_ids, texts: list[str]) -> None:
    expected = [reference_ids(text) for text in texts]
    for threads in (1, 2):
        assert ours.encode_batch(texts, num_threads=threads, disallowed_special=()) == expected
        assert ours.count_batch(texts, num_threads=threads) == [len(ids) for ids in expected]
    assert ours.encode_ordinary_batch(texts, num_threads=2) == expected


@pytest.mark.parametrize("name", _OPENAI)
def test_every_piece_of_two_bytes_and_every_short_token_changed_merge_as_the_rule_says(name):
    core, ranks = _fresh(name)._core, tiktoken.get_encoding(name)._mergeable_ranks
    rng = random.Random(f"tiny-{name}")
    pieces = [bytes(pair) for pair in itertools.product(range(256), repeat=2)]
    for token in ranks:
        if 3 <= len(token) <= 4:
            at = rng.randrange(len(token))
            pieces += [token, token[:at] + bytes([rng.randrange(256)]) + token[at + 1 :]]
    assert [piece for piece in pieces if core.merge(piece) != _list_loop_merge(piece, ranks)] == []


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "p50k_base", "llama3", "qwen3"])
def test_short_pieces_while_the_worker_cache_skips_and_looks_again_match_the_reference(name):
    # Pieces of up to 15 bytes skip a worker cache for a while when it finds under 1 in 16 (the pair rule's
    # models cache pieces of every length, the rank rule's those of 6 and more): ids must not depend on it.
    ours, reference_ids = _model(name)
    rng = random.Random(f"skip-{name}")
    # on after the first 1,024, off again 16,384 later (among recurring words), on at the next 1,024 unseen
    kinds = [("rare", 1500), ("often", 18_000), ("rare", 1500), ("mixed", 1100), ("often", 1000)]
    for low, high in ((6, 15), (1, 15), (2, 4)):
        text = hit_rate_schedule(rng, low, high, kinds)
        check_text(_fresh(name), reference_ids, text)  # cold caches
        check_text(ours, reference_ids, text)  # warm: the same text again, and whatever came before


@pytest.mark.parametrize("name", _OPENAI + _TOKENIZER_JSON)
def test_batches_of_repeated_unseen_and_long_texts_match_the_reference(name):
    ours, reference_ids = _model(name)
    rng = random.Random(f"batch-{name}")
    for round_ in range(3):
        check_batch(_fresh(name) if round_ == 0 else ours, reference_ids, batch_texts(rng))


@pytest.mark.parametrize("name", ["r50k_base", "p50k_base"])
def test_huge_pieces_in_batches_match_tiktoken(name):
    # The bucket merge (pieces of 16 KiB and more) beside other texts of a batch, each worker with its cache.
    ours, reference_ids = _model(name)
    rng = random.Random(f"huge-{name}")
    for size in (16_383, 16_384, 16_385, rng.randint(16_384, 200_000)):
        texts = [long_letters(rng, size)] + [long_letters(rng, rng.randint(16_384, 40_000)) for _ in range(2)]
        check_batch(ours, reference_ids, texts)


if __name__ == "__main__":  # the long run: new seeds until the time is up
    from support.fuzz_references import long_run

    def one_round(rounds: int, name: str, start: float) -> None:
        rng = random.Random(f"long-{rounds}")
        ours, reference_ids = _model(name)
        low, high = rng.choice([(2, 4), (1, 15), (6, 15)])
        check_text(_fresh(name) if rounds % 2 else ours, reference_ids, hit_rate_schedule(rng, low, high))
        check_batch(ours, reference_ids, batch_texts(rng))
        if name in _OPENAI:
            check_text(ours, reference_ids, long_letters(rng, rng.randint(16_384, 2 << 20)))

    long_run(one_round)
