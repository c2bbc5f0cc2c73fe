"""The references the native splitter is held to, and the inputs that sweep every code point.

- python-regex dialect: `regex.finditer` (whole matches; tiktoken's semantics), the version pinned to
  tiktoken's Unicode 16;
- oniguruma dialect: Hugging Face `tokenizers` (pinned in tests/requirements.txt): `Split(Regex(p),
  "isolated")`, or a `Sequence` of them for a chain, `.pre_tokenize_str(text)`.

    >>> regex_findall(r"\\d+", "a12b3")
    ['12', '3']
    >>> hf_isolated([r"\\d+"], "a12b3")
    ['a', '12', 'b', '3']

Sweeps: `sweep_chunks(template, planes)` fills a template with every code point of the planes (surrogates
left out) and joins the snippets with varied separators, in chunks of a few hundred snippets: the
oracle's cost grows faster than linearly on multi-megabyte strings, and a chunk names the code points it
holds when a test fails.
"""

from __future__ import annotations

import functools
import itertools

import regex
import tokenizers
from tokenizers.pre_tokenizers import Sequence as HfSequence
from tokenizers.pre_tokenizers import Split as HfSplit

__all__ = ["regex_findall", "hf_isolated", "sweep_chunks", "SEPARATORS", "CLASS_TEMPLATES", "first_difference"]

# Neighbouring snippets also meet through letters, digits, newlines, nothing at all, ...
SEPARATORS = [" ", "\n", "|", "  ", "x", "\t", "0", ". ", "", "\r\n", "'", "A", " \u00a0", "\u3000\n", "!", "\u4e00"]

# Templates in which a code point's classes decide the cuts. The first separates letter / number /
# whitespace / o200k's upper- and lower-ish / contraction letters (as tests/engine/test_native_split.py);
# the second punctuation, symbols, marks, CJK and the DeepSeek prefix class ([^\r\n\p{L}\p{P}\p{S}]).
CLASS_TEMPLATES = ("x{0}1{0}|{0}Aa'{0}", "a{0}a!{0}!\n{0} \u4e2d{0}1$ {0}")

_SNIPPETS_PER_CHUNK = 300


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str):
    return regex.compile(pattern)


def regex_findall(pattern: str, text: str) -> list[str]:
    return [match.group() for match in _compiled(pattern).finditer(text)]


@functools.lru_cache(maxsize=64)
def _hf_pre_tokenizer(patterns: tuple[str, ...]):
    splits = [HfSplit(tokenizers.Regex(pattern), "isolated") for pattern in patterns]
    return splits[0] if len(splits) == 1 else HfSequence(splits)


def hf_isolated(patterns, text: str) -> list[str]:
    return [piece for piece, _ in _hf_pre_tokenizer(tuple(patterns)).pre_tokenize_str(text)]


def sweep_chunks(template: str, planes) -> list[tuple[str, list[int]]]:
    """(chunk text, the code points it holds) for every code point of `planes` in `template`."""
    separators = itertools.cycle(SEPARATORS)
    chunks, parts, code_points = [], [], []
    for plane in planes:
        for cp in range(plane << 16, (plane + 1) << 16):
            if 0xD800 <= cp < 0xE000:
                continue
            parts += (template.format(chr(cp)), next(separators))
            code_points.append(cp)
            if len(code_points) == _SNIPPETS_PER_CHUNK:
                chunks.append(("".join(parts), code_points))
                parts, code_points = [], []
    if code_points:
        chunks.append(("".join(parts), code_points))
    return chunks


def first_difference(ours: list[str], theirs: list[str]) -> str:
    index = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    return f"ours {ours[max(index - 2, 0) : index + 3]!r}, reference {theirs[max(index - 2, 0) : index + 3]!r}"
