"""`Encoding` with the native splitter: any pattern in the subset splits in C, `splitter=` takes the
Hugging Face semantics (oniguruma dialect, Isolated, chains), and the ids equal the references': tiktoken
with the same pattern and ranks where tiktoken is the reference (tiktoken families, Tekken via
mistral-common), and for tokenizer.json-style splits tiktoken's merge of each piece `tokenizers` cuts.

    >>> enc = Encoding("llama3-on-cl100k", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens={},
    ...                splitter=SplitterChain([compile_splitter(LLAMA3_PATTERN, dialect="oniguruma")]))  # doctest: +SKIP
"""

from __future__ import annotations

import pickle

import pytest
import tiktoken

from tests.corpus import corpus_texts, edge_cases
from tests.engine._encodings import theirs
from tests.engine._split_oracles import hf_isolated
from tokend.engine import Encoding
from tokend.engine.patterns import DEEPSEEK_V3_PATTERNS, LLAMA3_PATTERN, LLAMA_CPP_PRE_TOKENIZERS, QWEN2_PATTERN, TEKKEN_PATTERN
from tokend.engine.splitting import SplitterChain, compile_splitter


@pytest.fixture(scope="module")
def cl100k_ranks():
    return theirs("cl100k_base")._mergeable_ranks


@pytest.fixture(scope="module")
def texts():
    return corpus_texts(limit_bytes=25_000) + edge_cases() + [
        "a  b\n  c ", "x\n\n  \t y  ", "   ", "12345 678", "中文字符 and 日本語のテキスト 12"]


def _valid(text: str) -> bool:
    return not any(0xD800 <= ord(char) < 0xE000 for char in text)


@pytest.mark.parametrize(
    "pattern",
    [TEKKEN_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, DEEPSEEK_V3_PATTERNS[2], LLAMA_CPP_PRE_TOKENIZERS["falcon"][1],
     r"\S+|\s+", r"\w+|[^\w\s]+|\s+(?!\S)|\s+"],
    ids=["tekken", "llama3", "qwen2", "deepseek-v3-main", "falcon", "non-space-runs", "words"],
)
def test_tiktoken_semantics_with_any_supported_pattern(pattern, cl100k_ranks, texts):
    # tiktoken (fancy-regex) is the reference for these semantics: mistral-common runs Tekken with it.
    reference = tiktoken.Encoding("custom", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
    ours = Encoding("custom", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
    assert ours._native_splitter is not None  # split in C, not by the regex module
    for text in texts:
        expected = reference.encode_ordinary(text)
        assert ours.encode_ordinary(text) == expected, text[:100]
        assert ours.count_ordinary(text) == len(expected)


@pytest.mark.parametrize(
    "stages",
    [(LLAMA3_PATTERN,), (QWEN2_PATTERN,), (TEKKEN_PATTERN,), DEEPSEEK_V3_PATTERNS, LLAMA_CPP_PRE_TOKENIZERS["deepseek-llm"]],
    ids=["llama3", "qwen2", "tekken", "deepseek-v3", "llama.cpp-deepseek-llm"],
)
def test_tokenizer_json_semantics_with_a_splitter_chain(stages, cl100k_ranks, texts):
    merge = theirs("cl100k_base")._encode_single_piece  # tiktoken's merge of one piece, no splitting
    chain = SplitterChain([compile_splitter(stage, dialect="oniguruma") for stage in stages])
    ours = Encoding("hf", pat_str=stages[0], mergeable_ranks=cl100k_ranks, special_tokens={"<|end|>": 100_300},
                    splitter=chain)
    for text in filter(_valid, texts):
        expected = [token for piece in hf_isolated(stages, text) for token in merge(piece.encode())]
        assert ours.encode_ordinary(text) == expected, text[:100]
        assert ours.count_ordinary(text) == len(expected)
    assert ours.encode("x<|end|>y", allowed_special="all") == merge(b"x") + [100_300] + merge(b"y")


def test_splitter_findall_in_the_oniguruma_dialect(cl100k_ranks):
    # A Splitter (not a chain) means findall: text no alternative matches is skipped, as tiktoken does.
    splitter = compile_splitter(r"\p{L}+", dialect="oniguruma")
    ours = Encoding("letters", pat_str=r"\p{L}+", mergeable_ranks=cl100k_ranks, special_tokens={}, splitter=splitter)
    assert ours.decode(ours.encode("ab, cd!")) == "abcd"


def test_patterns_outside_the_subset_still_work_through_regex(cl100k_ranks, texts):
    pattern = r"(?<=\s)\p{L}+|\p{L}+|\p{N}+|[^\s\p{L}\p{N}]+|\s+"  # lookbehind: refused natively
    with pytest.raises(Exception, match="lookbehind"):
        compile_splitter(pattern)
    reference = tiktoken.Encoding("lookbehind", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
    ours = Encoding("lookbehind", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
    assert ours._native_splitter is None
    for text in texts[:50]:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text)


def test_empty_matches_encode_to_nothing(cl100k_ranks):
    ours = Encoding("empty", pat_str=r"a*|\S|\s", mergeable_ranks=cl100k_ranks, special_tokens={})
    merge = theirs("cl100k_base")._encode_single_piece
    text = "baa caab a"
    assert ours.encode_ordinary(text) == [t for piece in ["b", "aa", " ", "c", "aa", "b", " ", "a"] for t in merge(piece.encode())]


def test_pickle_keeps_the_splitter(cl100k_ranks):
    chain = SplitterChain([compile_splitter(stage, dialect="oniguruma") for stage in DEEPSEEK_V3_PATTERNS])
    ours = Encoding("deepseek", pat_str="", mergeable_ranks=cl100k_ranks, special_tokens={}, splitter=chain)
    copy = pickle.loads(pickle.dumps(ours))
    text = "DeepSeek-V3 splits 12345 and 中文 apart."
    assert copy.encode_ordinary(text) == ours.encode_ordinary(text)
    assert copy._explicit_splitter == chain


def test_splitter_argument_is_checked(cl100k_ranks):
    with pytest.raises(TypeError, match="splitter"):
        Encoding("bad", pat_str="", mergeable_ranks=cl100k_ranks, special_tokens={}, splitter=r"\S+")


def test_capturing_groups_split_on_whole_matches_in_both_paths(cl100k_ranks):
    # tiktoken splits on whole matches; regex.findall would return the groups' text instead.
    text = "hello world, 123 again"
    for pattern in (r"(\w)\w*|\s+|\S", r"(\w)\w*|\s+|(?<=,)\S|\S"):  # native; through regex (lookbehind)
        ours = Encoding("groups", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
        expected = tiktoken.Encoding("groups", pat_str=pattern, mergeable_ranks=cl100k_ranks, special_tokens={})
        assert ours.encode_ordinary(text) == expected.encode_ordinary(text)
        assert ours.decode(ours.encode_ordinary(text)) == text
