"""Chunking's native plan (service/native/chunk_plan.c) held to the Python definition it replaces.

The plan computes, chunk after chunk, the first attempt of `_Chunker.chunk_end` (the furthest cut the whole
encoding allows, moved back to a separator) and `_Chunker.next_start`; chunking.py keeps a planned chunk when
its own encoding fits and searches in Python otherwise. Held here:
- its separator cuts to `separators.last_separator_cut` (the reverse `regex` searches that define them) on
  random text, and its whitespace to `regex`'s `\\s` over every code point;
- whole chunkings to the loop chunking.py ran before the plan (`reference_chunks` below: `chunk_end` and
  `next_start` for every chunk, the separators by `regex`), on random texts, budgets, overlaps and
  preferences, for byte-level families (tiktoken's rule, Hugging Face's pair rule), SentencePiece, a model whose
  cut text overshoots (the search path), and allowed special tokens (protected spans; SentencePiece's
  control pieces, whose cut grid is built stretch by stretch).
"""

from __future__ import annotations

import random

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine._budget_support import family, hostile_text, overshooting, overshooting_text
from tests.engine._sentencepiece_family import family as sentencepiece_family
from tokend.engine import chunking
from tokend.engine._chunk_plan import separator_cut
from tokend.engine.offsets import align_tokens
from tokend.engine.separators import last_separator_cut
from tokend.errors import InvalidBudgetError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("paragraph", "sentence", "whitespace")
# Characters the separator patterns look at (and a few they must not take for them)
SEPARATOR_ALPHABET = list("ab .!?\n\n\t \u2026\"')]\u3002\uff01\uff1f\u300d\u300f\u2019\u201d\x1c\u3000\u00a0\u2028\r") + [
    "\ud800", "\U0001F600", "\n\n", ". ", "\u3002\u300d",
]  # fmt: skip


def reference_chunks(encoding, text, max_tokens, overlap, prefer, allowed_special=frozenset()):
    """Chunking as chunking.py did it before the native plan: every chunk by `chunk_end`, then `next_start`."""
    grid = align_tokens(encoding, text, allowed_special=allowed_special, disallowed_special=())
    protected = chunking._special_spans(encoding, text, allowed_special)
    chunker = chunking._Chunker(encoding, grid, max_tokens, overlap, chunking.PREFERENCES[prefer], allowed_special, protected)
    chunks, start, previous_end = [], 0, 0
    while start < len(text):
        try:
            end, ids = chunker.chunk_end(start, previous_end)
        except chunking._OverlapTooLong:
            start = previous_end
            end, ids = chunker.chunk_end(start, previous_end)
        chunks.append((start, end, ids))
        if end == len(text):
            break
        start, previous_end = chunker.next_start(start, end), end
    return chunks


def outcome(make):
    """The chunks as (start, end, ids), or the refusal's message."""
    try:
        return make()
    except InvalidBudgetError as exc:
        return ("refused", exc.argument, str(exc))


def assert_same_chunks(encoding, text, max_tokens, overlap, prefer, allowed_special=frozenset()):
    ours = outcome(lambda: [(c.start, c.end, c.ids) for c in encoding.chunk(
        text, max_tokens, overlap, prefer, allowed_special=allowed_special, disallowed_special=())])  # fmt: skip
    reference = outcome(lambda: reference_chunks(encoding, text, max_tokens, overlap, prefer, allowed_special))
    assert ours == reference


def test_whitespace_is_regexs_whitespace_at_every_code_point():
    spaces = {ord(match.group()) for match in regex.finditer(r"\s", "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000))))}
    assert len(spaces) == 25  # Unicode White_Space; str.isspace adds U+001C..U+001F, which are not
    found = {code for code in range(0x110000) if separator_cut("a" + chr(code) + "b", 2, 0, 1) == 1}
    assert found == spaces


def test_separator_cuts_are_the_reverse_searches():
    rng = random.Random(31)
    for _ in range(40_000):
        text = "".join(rng.choice(SEPARATOR_ALPHABET) for _ in range(rng.randint(1, 18)))
        low, high = rng.randint(0, len(text)), rng.randint(0, len(text))
        for number, kind in enumerate(KINDS):
            assert separator_cut(text, number, low, high) == last_separator_cut(text, kind, low, high), (text, kind, low, high)


def test_a_run_of_closers_costs_its_length_not_its_square():
    # The reverse search tries every end inside the run and walks back over it; the plan looks the run up once.
    text = "x" + "\u300d" * 200_000 + " "
    assert separator_cut(text, 1, 0, len(text) - 1) is None
    assert separator_cut("\u3002" + text[1:], 1, 0, len(text) - 1) == len(text) - 1


def separator_text() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(SEPARATOR_ALPHABET + ["hello", " world", "The", "42", "中文"]), max_size=80).map("".join)


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "hf-gpt2", "fallback"])
@SETTINGS
@given(
    text=st.one_of(hostile_text(), separator_text()),
    max_tokens=st.integers(1, 20),
    overlap_fraction=st.sampled_from([0, 0, 0.3, 0.5, 0.95]),
    prefer=st.sampled_from(list(chunking.PREFERENCES)),
)
def test_byte_level_chunks_are_the_python_loops(name, text, max_tokens, overlap_fraction, prefer):
    assert_same_chunks(family(name), text, max_tokens, int(max_tokens * overlap_fraction), prefer)


@SETTINGS
@given(
    text=st.one_of(hostile_text(), separator_text()),
    max_tokens=st.integers(1, 20),
    overlap_fraction=st.sampled_from([0, 0.3, 0.95]),
    prefer=st.sampled_from(list(chunking.PREFERENCES)),
)
def test_sentencepiece_chunks_are_the_python_loops(text, max_tokens, overlap_fraction, prefer):
    assert_same_chunks(sentencepiece_family("llama-like"), text, max_tokens, int(max_tokens * overlap_fraction), prefer)


@SETTINGS
@given(text=overshooting_text(), max_tokens=st.integers(1, 12), overlap=st.integers(0, 11),
       prefer=st.sampled_from(list(chunking.PREFERENCES)))  # fmt: skip
def test_chunks_whose_plan_overshoots_are_the_python_loops(text, max_tokens, overlap, prefer):
    assert_same_chunks(overshooting(), text, max_tokens, min(overlap, max_tokens - 1), prefer)


@SETTINGS
@given(
    parts=st.lists(st.one_of(st.sampled_from(["<|endoftext|>", "<|endofprompt|>", "<|endo", "\n\n", ". "]), hostile_text(6)), max_size=12),
    max_tokens=st.integers(1, 12),
    overlap_fraction=st.sampled_from([0, 0.5]),
    prefer=st.sampled_from(list(chunking.PREFERENCES)),
)
def test_chunks_around_allowed_special_tokens_are_the_python_loops(parts, max_tokens, overlap_fraction, prefer):
    assert_same_chunks(family("cl100k_base"), "".join(parts), max_tokens, int(max_tokens * overlap_fraction), prefer, "all")


@SETTINGS
@given(
    parts=st.lists(st.one_of(st.sampled_from(["[INST]", "[/INST]", "</s>", "\n\n", ". "]), st.text(max_size=10)), max_size=10),
    max_tokens=st.integers(2, 12),
    prefer=st.sampled_from(list(chunking.PREFERENCES)),
)
def test_sentencepiece_chunks_around_control_pieces_are_the_python_loops(parts, max_tokens, prefer):
    from tests.engine.sentencepiece.models import ours

    text = "".join(parts).replace("\u2581", "")
    assert_same_chunks(ours("mistral_v3"), text, max_tokens, max_tokens // 3, prefer, {"[INST]", "[/INST]", "</s>"})


@pytest.mark.parametrize("overlap", [0, 1])
@pytest.mark.parametrize("prefer", ["paragraph", "token"])
def test_thousands_of_chunks_over_several_plans(overlap, prefer):
    # Plans come in growing batches (up to CHUNK_PLAN_BATCH): a long text crosses many batch ends.
    rng = random.Random(overlap)
    words = ["alpha", " beta", ". Gamma", "\n\n", " delta", "\u3002", " 42", "!", "\n"]
    text = "".join(rng.choice(words) for _ in range(12_000))
    assert_same_chunks(family("cl100k_base"), text, 3, overlap, prefer)


@pytest.mark.parametrize("max_tokens, overlap", [(10**30, 0), (10**30, 10**30 - 1), (2**63, 2**62), (2**32 + 5, 3)])
def test_budgets_past_64_bits_are_planned_as_the_python_loop_did(max_tokens, overlap):
    text = "One. Two.\n\nThree four " * 50
    assert_same_chunks(family("cl100k_base"), text, max_tokens, overlap, "paragraph")
    assert [(c.start, c.end) for c in family("cl100k_base").chunk(text, max_tokens, overlap)] == [(0, len(text))]


def test_the_plan_grows_while_it_holds_and_restarts_after_a_search(monkeypatch):
    encoding = overshooting()
    limits = []
    plan = chunking._Chunker.plan

    def recorded(self, start, previous_end, limit):
        limits.append(limit)
        return plan(self, start, previous_end, limit)

    monkeypatch.setattr(chunking._Chunker, "plan", recorded)
    assert_same_chunks(family("cl100k_base"), "word " * 3000, 1, 0, "token")
    assert limits[:4] == [1, 2, 4, 8] and max(limits) == chunking.CHUNK_PLAN_BATCH
    limits.clear()
    text = "xxxxxxxxy " * 200  # every chunk of 2 tokens cut inside "xxxxxxxx" re-merges: searched
    assert_same_chunks(encoding, text, 2, 0, "token")
    assert limits.count(1) > 50  # each search restarts the plan at one chunk


def test_the_planner_plans_any_limit_and_budget_its_arguments_take():
    """`plan`'s arguments take any 64-bit budget and any Py_ssize_t limit (chunking.py passes budgets up to
    2**40 + 1 and limits up to CHUNK_PLAN_BATCH): a limit past the text's length plans every chunk (there is at
    most one a character; `8 * limit` bytes overflowed into a SystemError), and a budget near 2**63 plans as one
    reaching past every token (added to the tokens before `start` it overflowed: the chunk ended at the nearest
    cut)."""
    from array import array

    from tokend.engine._chunk_plan import plan

    text = "ab cd. ef\n\ngh"
    tokens, chars = array("I", [0, 1, 2, 3, 4, 5]), array("I", [0, 2, 5, 6, 9, 13])

    def planned(max_tokens: int, overlap: int, window_tokens: int, start: int, limit: int) -> list[int]:
        answer = plan(text, tokens, chars, array("I"), (0, 1, 2), max_tokens, overlap, window_tokens, start, 0, limit)
        return list(memoryview(answer).cast("I"))

    assert planned(2, 1, 1, 0, 2**60) == planned(2, 1, 1, 0, len(text)) == [0, 2, 2, 6, 5, 9, 6, 13]
    assert planned(2**63 - 1, 2**63 - 2, 2**62, 5, 10) == planned(2**40 + 1, 2**40, 2**40, 5, 10) == [5, 13]
