"""Very long segments made of a few runs ("a" * n, a line of spaces, "ab" * n, "====", digits) merge one score
level a pass (native/sp_bpe_passes.c): a stack sweep per level, pairs a merge creates at the same level merged
on the spot (Llama 2's runs of ▁ all score -1e9), a level of a few pairs read from its first pair to its last
one, a created pair scoring above the level handing the symbols to the heap (`longest_first`), a level held
by few pairs handing them to the level lists. 0 mismatches against sentencepiece on such segments, for
Llama 2's own vocabulary and every model of models.py.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.sentencepiece.test_long_segments import _llama2

LONG = 9_000  # characters: above the passes' threshold (8,192 symbols)
UNITS = ["a", "b", "ab", "aab", "ba", " ", "  ", "\u2581", "=", "7", "12", "é", "中", "the", "ab ", "aaaa b"]
MODELS = ["llama2", "mistral_v1", "llama2_like", "ties", "whitespace_runs", "symbols", "longest_first", "shortest_first"]


def _pair(model_name: str):
    if model_name == "llama2":
        return _llama2()
    from tests.engine.sentencepiece.models import oracle, ours

    return ours(model_name), oracle(model_name)


def _run_text(runs: list[tuple[str, int]]) -> str:
    """The runs, repeated until the text reaches LONG characters."""
    text = "".join(unit * count for unit, count in runs)
    return text * (LONG // len(text) + 1)


RUN_TEXTS = {
    "a": "a" * 40_000,
    "a then b": "a" * 20_001 + "b" * 19_999,
    "ab": "ab" * 20_000,
    "aab": "aab" * 13_000,
    "spaces": " " * 40_000,
    "marks": "\u2581" * 40_001,
    "equals": "=" * 40_000,
    "digits": "7" * 40_000,
    "runs of a and spaces": ("a" * 3_001 + " " * 2_999) * 7,
    "é": "é" * 30_000,
    "中": "中" * 30_000,
    "a with one b": "a" * 20_000 + "b" + "a" * 20_000,
}


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("label", sorted(RUN_TEXTS))
def test_run_segments_match_sentencepiece(model_name, label):
    ours, oracle = _pair(model_name)
    text = RUN_TEXTS[label]
    assert ours.encode_ordinary(text) == oracle.encode(text), f"{model_name}: {label}"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    runs=st.lists(st.tuples(st.sampled_from(UNITS), st.integers(1, 4_000)), min_size=1, max_size=5),
    model_name=st.sampled_from(MODELS),
)
def test_hypothesis_run_segments(runs, model_name):
    ours, oracle = _pair(model_name)
    text = _run_text(runs)
    assert ours.encode_ordinary(text) == oracle.encode(text)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    unit=st.sampled_from(["a", "ab", " ", "=", "7"]),
    share=st.sampled_from([0.02, 0.1, 0.25, 0.5]),
    seed=st.integers(0, 2**32 - 1),
    model_name=st.sampled_from(MODELS),
)
def test_hypothesis_runs_among_random_letters(unit, share, seed, model_name):
    """A run-heavy segment with random letters mixed in: the share of the dominant level decides between passes
    and level lists, and the passes meet levels of a few pairs all along the segment."""
    ours, oracle = _pair(model_name)
    rng = random.Random(seed)
    parts = []
    while sum(map(len, parts)) < LONG:
        parts.append(unit * rng.randint(1, 40) if rng.random() > share else "".join(rng.choices("abcdefghij", k=rng.randint(1, 6))))
    text = "".join(parts)
    assert ours.encode_ordinary(text) == oracle.encode(text)
