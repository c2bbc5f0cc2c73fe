"""The models the differential fuzz tests of the engine run, each beside its reference's ids of a text
(tiktoken for OpenAI's encodings, tokenizers for tokenizer.json files), shared by tests/engine/test_issue18_*_fuzz.py.

    ours, reference_ids = model_and_reference("llama3")   # our long-lived Encoding, the reference's ids
    assert ours.encode_ordinary(text) == reference_ids(text)
    for name in OPENAI + TOKENIZER_JSON: ...

    if __name__ == "__main__":   # a fuzz file's long run: `python tests/engine/test_x_fuzz.py 600`
        long_run(lambda rounds, name, start: ...)    # one round of checks; raises on a difference
"""

from __future__ import annotations

import functools
import json
import random
import runpy
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import tiktoken
import tokenizers

from support import tokenizer_json as files
from tokend import get_encoding
from tokend.engine import Encoding, parse_tokenizer_json

__all__ = ["OPENAI", "TOKENIZER_JSON", "chars_up_to", "long_run", "model_and_reference"]

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


def chars_up_to(rng: random.Random, pool: Sequence[str], target: int) -> str:
    """Characters drawn from `pool` until about `target` UTF-8 bytes (past it at most by one character, 30 % of
    the time): the fuzz files' words."""
    chars, size = [], 0
    while size < target:
        char = rng.choice(pool)
        if size and size + len(char.encode()) > target and rng.random() < 0.7:
            break
        chars.append(char)
        size += len(char.encode())
    return "".join(chars)


def long_run(one_round: Callable[[int, str, float], None]) -> None:
    """New seeds until the time is up (seconds in argv[1], 60 by default): ``one_round(rounds, name, start)`` for
    each model in turn, with tiktoken's files offline as the suite has them."""
    runpy.run_path(str(Path(__file__).parents[1] / "conftest.py"))
    seconds, start, rounds = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0, time.monotonic(), 0
    while time.monotonic() - start < seconds:
        one_round(rounds, (OPENAI + TOKENIZER_JSON)[rounds % 6], start)
        rounds += 1
    print(f"{rounds} rounds, no difference")
