"""Complexity guards for the native splitter: 1 MB of one repeated character or class per pattern, and
patterns that make backtracking matchers exponential or quadratic, each in well under a second of CPU.

A linear split of 1 MB takes ~5-20 ms here; a quadratic one would take minutes, an exponential one
forever, so the generous bound below cannot flake and still catches both (CPU time of this process, so
other load on the machine does not count). Why the matcher is linear: split_program.c's header.

    >>> _cpu_seconds(compile_splitter(r"\\s*[\\r\\n]|\\s").native_splitter().count, " " * 1000) < 1
    True
"""

from __future__ import annotations

import random
import string
import time

import pytest

from tokend.engine.patterns import LLAMA_CPP_PRE_TOKENIZERS, SPLIT_PATTERNS
from tokend.engine.splitting import SplitterChain, compile_splitter

MB = 1_000_000
LIMIT_SECONDS = 1.0


def _cpu_seconds(function, text: str) -> float:
    started = time.process_time()
    function(text)
    return time.process_time() - started


def _one_megabyte_texts() -> dict[str, str]:
    rng = random.Random(14)
    return {
        "letter": "a" * MB,
        "upper": "A" * MB,
        "random letters": "".join(rng.choice(string.ascii_letters) for _ in range(MB)),
        "spaces": " " * MB,
        "spaces then x": " " * (MB - 1) + "x",
        "newlines": "\n" * MB,
        "space newline": " \n" * (MB // 2),
        "crlf and spaces": "\r\n  " * (MB // 4),
        "digits": "1" * MB,
        "apostrophes": "'" * MB,
        "contractions": "'s" * (MB // 2),
        "punctuation": "!" * MB,
        "slashes": "/" * MB,
        "marks": "\u0301" * (MB // 2),
        "cjk": "\u4e2d" * (MB // 3),
        "emoji": "\U0001f600" * (MB // 4),
        "letter digit": "a1" * (MB // 2),
        "mark after space": " \u0301" * (MB // 3),
    }


TEXTS = _one_megabyte_texts()


def _splitters():
    cases = []
    for name, spec in SPLIT_PATTERNS.items():
        for use_builtin in (False, True):
            stages = [compile_splitter(p, dialect=spec.dialect, use_builtin=use_builtin) for p in spec.patterns]
            if use_builtin and not any(stage.builtin for stage in stages):
                continue
            chain = SplitterChain(stages, mode=spec.mode)
            cases.append(pytest.param(chain.native_splitter().count, id=f"{name}-{'scanner' if use_builtin else 'matcher'}"))
    return cases


@pytest.mark.parametrize("count", _splitters())
def test_one_megabyte_of_one_class_per_family(count):
    for name, text in TEXTS.items():
        seconds = _cpu_seconds(count, text)
        assert seconds < LIMIT_SECONDS, f"{name}: {seconds:.2f} s"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LLAMA_CPP_PRE_TOKENIZERS))
def test_one_megabyte_of_one_class_llama_cpp_lists(name):
    count = SplitterChain([compile_splitter(p, dialect="oniguruma") for p in LLAMA_CPP_PRE_TOKENIZERS[name]]).native_splitter().count
    for text_name, text in TEXTS.items():
        seconds = _cpu_seconds(count, text)
        assert seconds < LIMIT_SECONDS, f"{text_name}: {seconds:.2f} s"


# Exponential or quadratic for a plain backtracker; the run caches, failure intervals and memoization keep
# every one of them linear here (regex itself takes seconds to hours on several).
_HOSTILE = [
    (r"(?:a|a)*b", "a" * 100_000 + "c"),          # 2^n paths
    (r"(?:a+)+b", "a" * 100_000 + "c"),           # the classic nested repeat
    (r"(?:a|ab)*c", "ab" * 50_000 + "a"),
    (r"(?:x+x+)+y", "x" * 100_000),
    (r"\s*[\r\n]|\s", " " * MB),                  # the run would be rescanned at every position
    (r"\p{L}*1|\p{L}", "a" * MB),
    (r"a*?b|a", "a" * MB),                        # lazy
    (r"(?=a*b)a|a", "a" * MB),                    # a lookahead that scans to the end every time
    (r"(?>a*)b|a", "a" * MB),                     # atomic
    (r"(?:\s{1,3}|\s\s)+x|\s", " " * 200_000),
    (r"(?:'s|'t|')*z|'", "'s" * 200_000),
]


@pytest.mark.parametrize("pattern, text", _HOSTILE, ids=[pattern for pattern, _ in _HOSTILE])
@pytest.mark.parametrize("dialect", ["python-regex", "oniguruma"])
def test_hostile_patterns_stay_linear(pattern, text, dialect):
    splitter = compile_splitter(pattern, dialect=dialect)
    seconds = _cpu_seconds(splitter.native_splitter().count, text)
    assert seconds < LIMIT_SECONDS, f"{seconds:.2f} s"
    assert _cpu_seconds(splitter.native_splitter("isolated").count, text) < LIMIT_SECONDS


def test_hostile_results_are_still_right():
    # Memoization must not change the answer: small versions against the reference.
    import regex

    for pattern, text in _HOSTILE:
        small = text[:300]
        assert compile_splitter(pattern).findall(small) == [m.group() for m in regex.finditer(pattern, small)], pattern
