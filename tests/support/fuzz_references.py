"""The models the differential fuzz tests of the engine run, each beside its reference's ids of a text
(tiktoken for OpenAI's encodings, tokenizers for tokenizer.json files), shared by tests/engine/test_issue18_*_fuzz.py.

    ours, reference_ids = model_and_reference("llama3")   # our long-lived Encoding, the reference's ids
    assert ours.encode_ordinary(text) == reference_ids(text)
    for name in OPENAI + TOKENIZER_JSON: ...
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import tiktoken
import tokenizers

from support import tokenizer_json as files
from tokend import get_encoding
from tokend.engine import Encoding, parse_tokenizer_json

__all__ = ["OPENAI", "TOKENIZER_JSON", "model_and_reference"]

OPENAI = ("cl100k_base", "o200k_base", "r50k_base", "p50k_base")
TOKENIZER_JSON = ("llama3", "qwen3")


@functools.lru_cache(maxsize=None)
def _tokenizer_json(name: str) -> tuple[Encoding, tokenizers.Tokenizer]:
    document = {"llama3": files.llama3_tokenizer_json, "qwen3": files.qwen3_tokenizer_json}[name]()
    return (Encoding.from_model(parse_tokenizer_json(document, name=name).model),
            tokenizers.Tokenizer.from_str(json.dumps(document)))


def model_and_reference(name: str) -> tuple[Encoding, Callable[[str], list[int]]]:
    """(our long-lived Encoding, the reference's ids of a text without special tokens)."""
    if name in OPENAI:
        return get_encoding(name), tiktoken.get_encoding(name).encode_ordinary
    ours, theirs = _tokenizer_json(name)
    return ours, lambda text: theirs.encode(text, add_special_tokens=False).ids
