"""OpenAI's cl100k_base and o200k_base as plain data (no rank files: those are bytes the registry supplies).

Names, patterns, special tokens and ids exactly as tiktoken defines them (`tiktoken_ext/openai_public.py`),
plus the SHA-256 of each rank file so a loader can verify what it was handed:

>>> import gzip, importlib.resources       # here: the rank file the embedded registry ships
>>> data = gzip.decompress(importlib.resources.files("tokend.registry").joinpath(
...     "default/cl100k_base/1/ranks.tiktoken.gz").read_bytes())
>>> from tokend.engine import load_tiktoken_ranks
>>> ranks = load_tiktoken_ranks(data, expected_sha256=CL100K_BASE.rank_file_sha256)
>>> enc = CL100K_BASE.build(ranks)
>>> enc.encode("hello world")
[15339, 1917]

Not handled: fetching rank files (that is I/O, the registry's job); gpt2/r50k/p50k (not shipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .patterns import GPT4_PATTERN, O200K_PATTERN

__all__ = ["EncodingSpec", "CL100K_BASE", "O200K_BASE", "OPENAI_ENCODINGS"]

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class EncodingSpec:
    """Everything about an encoding except its ranks."""

    name: str
    pattern: str
    special_tokens: Mapping[str, int] = field(default_factory=dict)
    rank_file_sha256: str | None = None  # SHA-256 of the tiktoken rank file (uncompressed)
    explicit_n_vocab: int | None = None

    def build(self, mergeable_ranks: dict[bytes, int]):
        """The `Encoding` for these ranks (checks `explicit_n_vocab` when set)."""
        from .encoding import Encoding

        return Encoding(
            self.name,
            pat_str=self.pattern,
            mergeable_ranks=mergeable_ranks,
            special_tokens=dict(self.special_tokens),
            explicit_n_vocab=self.explicit_n_vocab,
        )


CL100K_BASE = EncodingSpec(
    name="cl100k_base",
    pattern=GPT4_PATTERN,
    special_tokens=MappingProxyType(
        {ENDOFTEXT: 100257, FIM_PREFIX: 100258, FIM_MIDDLE: 100259, FIM_SUFFIX: 100260, ENDOFPROMPT: 100276}
    ),
    rank_file_sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    # 100256 mergeable + 5 special tokens, but ids 100261..100275 are unused, so tiktoken sets no
    # explicit_n_vocab for cl100k_base; n_vocab = max id + 1 = 100277.
    explicit_n_vocab=None,
)

O200K_BASE = EncodingSpec(
    name="o200k_base",
    pattern=O200K_PATTERN,
    special_tokens=MappingProxyType({ENDOFTEXT: 199999, ENDOFPROMPT: 200018}),
    rank_file_sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    explicit_n_vocab=None,
)

OPENAI_ENCODINGS: Mapping[str, EncodingSpec] = MappingProxyType(
    {CL100K_BASE.name: CL100K_BASE, O200K_BASE.name: O200K_BASE}
)
