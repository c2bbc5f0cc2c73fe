"""`ByteLevelModel`: every byte-level BPE tokenizer tokend runs, as plain data (what `Encoding.from_model`
builds an Encoding from, and what the format readers produce).

The families differ in a few choices, each a field here:

| family | merge rule | ids | pre-tokenizer | extras |
|---|---|---|---|---|
| tiktoken (GPT-2 … o200k_harmony), minbpe | rank of the concatenation (`merges=None`) | rank | one regex, matches only | special tokens |
| Mistral Tekken | rank (`merges=None`) | rank + number of special slots | one regex, matches only | special tokens |
| Hugging Face tokenizer.json, GGUF | pair priority (`merges`) | vocabulary ids | Split / ByteLevel steps | NFC, added tokens with flags, `ignore_merges` |

>>> from tokend.engine import Encoding, Split
>>> model = ByteLevelModel("toy", vocabulary={bytes([i]): i for i in range(256)} | {b"hi": 256},
...                        pre_tokenizer=(Split(r"\\S+|\\s+", keep_gaps=False),))
>>> Encoding.from_model(model).encode("hi hi")
[256, 32, 256]

Not handled here: parsing files (see `hf_tokenizer_json`, `tekken_json`, `gpt2_files`) and validation
(the Encoding checks what it is given).
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .added_tokens import AddedToken
from .pre_tokenizer import PreTokenizerStep
from .splitting.nodes import Dialect

__all__ = ["ByteLevelModel", "Normalizer", "TokenizerFile"]

Normalizer = Literal["NFC"]


@dataclass(frozen=True, eq=False)
class ByteLevelModel:
    """Everything an `Encoding` needs.

    `merges`: None for tiktoken's rule (merge the adjacent pair whose concatenation has the lowest id);
    otherwise a flat `array("I")` of (left id, right id, merged id) triples in priority order (Hugging
    Face's rule), and `ignore_merges` says whether a piece that is itself a token skips the merges.
    `special_tokens` are tiktoken-style (matched as tiktoken matches them); `added_tokens` are Hugging
    Face-style (flags, and matched as Hugging Face matches them). A model has one kind or the other.
    `extra_decoder`: ids that decode to bytes but that encoding never produces (vocabulary entries
    outside the byte-level alphabet, unused GGUF slots).
    """

    name: str
    vocabulary: Mapping[bytes, int]  # token bytes -> id
    pre_tokenizer: tuple[PreTokenizerStep, ...]
    special_tokens: Mapping[str, int] = field(default_factory=dict)  # text -> id (tiktoken-style)
    added_tokens: tuple[AddedToken, ...] = ()
    merges: array | None = None  # (left id, right id, merged id) * n, priority order
    ignore_merges: bool = True
    normalizer: Normalizer | None = None
    extra_decoder: Mapping[int, bytes] = field(default_factory=dict)  # id -> bytes
    # Hugging Face's ByteLevel decoder runs over added tokens too: one whose every character is in the
    # byte-level alphabet decodes as those bytes ("ĠĠhi" -> b"  hi", "þ" -> b"\xfe"), any other as its UTF-8.
    added_tokens_byte_level: bool = False
    explicit_n_vocab: int | None = None
    dialect: Dialect = "python-regex"  # the regex dialect the pre-tokenizer's patterns were written for

    @property
    def merge_rule(self) -> Literal["rank", "pairs"]:
        return "rank" if self.merges is None else "pairs"


@dataclass(frozen=True)
class TokenizerFile:
    """What a format reader returns: the model, and the BOS/EOS tokens the file names (for the manifest;
    `encode` never adds them)."""

    model: ByteLevelModel
    bos_token: str | None = None
    eos_token: str | None = None
