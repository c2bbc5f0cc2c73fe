"""The examples in the engine's docstrings run and give what they show (docs that cannot rot)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tokend.errors",
    "tokend.engine.encoding",
    "tokend.engine.bpe",
    "tokend.engine.merges",
    "tokend.engine.minbpe_model",
    "tokend.engine.tiktoken_ranks",
    "tokend.engine.special_tokens",
    "tokend.engine.piece_cache",
    "tokend.engine.training",
    "tokend.engine.vocabulary_checks",
    "tokend.engine.patterns",
    "tokend.engine.budget_methods",
    "tokend.engine.budget_search",
    "tokend.engine.offsets",
    "tokend.engine.truncation",
    "tokend.engine.chunking",
    "tokend.engine.separators",
    "tokend.engine.stream_decoder",
    "tokend.engine.byte_level_alphabet",
    "tokend.engine.byte_level_model",
    "tokend.engine.added_tokens",
    "tokend.engine.pre_tokenizer",
    "tokend.engine.regex_splitter",
    "tokend.engine.text_pipeline",
    "tokend.engine.pair_bpe",
    "tokend.engine.splitting",
    "tokend.engine.splitting.splitter",
    "tokend.engine.splitting.syntax",
    "tokend.engine.splitting.nodes",
    "tokend.engine.splitting.compiler",
    "tokend.engine.splitting.charset",
    "tokend.engine.splitting.unicode_properties",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    result = doctest.testmod(importlib.import_module(module_name))
    assert result.failed == 0
    assert result.attempted > 0
