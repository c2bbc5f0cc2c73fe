"""OpenAI's encodings as plain data (no rank files: those are bytes the registry supplies): gpt2, r50k_base,
p50k_base, p50k_edit, cl100k_base, o200k_base and o200k_harmony.

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

Shared ranks: gpt2 and r50k_base are the same ranks (tiktoken builds gpt2's from GPT-2's encoder.json and
vocab.bpe, whose conversion is byte for byte r50k_base.tiktoken); p50k_edit is p50k_base's ranks with the
FIM tokens; o200k_harmony is o200k_base's ranks with GPT-OSS's harmony tokens.

Not handled: fetching rank files (that is I/O, the registry's job).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN

__all__ = [
    "EncodingSpec",
    "GPT2",
    "R50K_BASE",
    "P50K_BASE",
    "P50K_EDIT",
    "CL100K_BASE",
    "O200K_BASE",
    "O200K_HARMONY",
    "OPENAI_ENCODINGS",
]

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
    # gpt2 only: SHA-256 of GPT-2's own files, {"encoder.json": ..., "vocab.bpe": ...}, as tiktoken checks them
    gpt2_files_sha256: Mapping[str, str] | None = None

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


R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
P50K_SHA256 = "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"

GPT2 = EncodingSpec(
    name="gpt2",
    pattern=GPT2_PATTERN,
    special_tokens=MappingProxyType({ENDOFTEXT: 50256}),
    rank_file_sha256=R50K_SHA256,
    explicit_n_vocab=50257,
    gpt2_files_sha256=MappingProxyType({
        "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
    }),
)

R50K_BASE = EncodingSpec(
    name="r50k_base",
    pattern=GPT2_PATTERN,
    special_tokens=MappingProxyType({ENDOFTEXT: 50256}),
    rank_file_sha256=R50K_SHA256,
    explicit_n_vocab=50257,
)

P50K_BASE = EncodingSpec(
    name="p50k_base",
    pattern=GPT2_PATTERN,
    special_tokens=MappingProxyType({ENDOFTEXT: 50256}),
    rank_file_sha256=P50K_SHA256,
    explicit_n_vocab=50281,
)

P50K_EDIT = EncodingSpec(
    name="p50k_edit",
    pattern=GPT2_PATTERN,
    special_tokens=MappingProxyType({ENDOFTEXT: 50256, FIM_PREFIX: 50281, FIM_MIDDLE: 50282, FIM_SUFFIX: 50283}),
    rank_file_sha256=P50K_SHA256,
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


def _harmony_special_tokens() -> dict[str, int]:
    # tiktoken 0.14's o200k_harmony, in its order. <|endofprompt|> (from o200k_base) and <|reserved_200018|>
    # share the id 200018; decoding it gives <|endofprompt|>, as in tiktoken.
    return {
        **O200K_BASE.special_tokens,
        "<|startoftext|>": 199998,
        ENDOFTEXT: 199999,
        "<|reserved_200000|>": 200000,
        "<|reserved_200001|>": 200001,
        "<|return|>": 200002,
        "<|constrain|>": 200003,
        "<|reserved_200004|>": 200004,
        "<|channel|>": 200005,
        "<|start|>": 200006,
        "<|end|>": 200007,
        "<|message|>": 200008,
        "<|reserved_200009|>": 200009,
        "<|reserved_200010|>": 200010,
        "<|reserved_200011|>": 200011,
        "<|call|>": 200012,
    } | {f"<|reserved_{i}|>": i for i in range(200013, 201088)}


O200K_HARMONY = EncodingSpec(
    name="o200k_harmony",
    pattern=O200K_PATTERN,
    special_tokens=MappingProxyType(_harmony_special_tokens()),
    rank_file_sha256=O200K_BASE.rank_file_sha256,
    explicit_n_vocab=None,
)

OPENAI_ENCODINGS: Mapping[str, EncodingSpec] = MappingProxyType(
    {spec.name: spec for spec in (GPT2, R50K_BASE, P50K_BASE, P50K_EDIT, CL100K_BASE, O200K_BASE, O200K_HARMONY)}
)
