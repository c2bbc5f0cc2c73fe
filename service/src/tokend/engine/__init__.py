"""tokend's engine: byte-level BPE (encode, count, decode, train), its file formats (tiktoken ranks,
minbpe, GPT-2's encoder.json + vocab.bpe, Hugging Face tokenizer.json, Mistral's tekken.json), and the budget
operations every family shares (offsets, truncate, chunk, streaming decode). Pure computation: no I/O
beyond parsing bytes handed to it, no gRPC, no metrics.

>>> from tokend.engine import Encoding, train, GPT4_PATTERN
"""

from .added_tokens import AddedToken
from .bpe import byte_pair_encode
from .budget_methods import BudgetMethods
from .byte_level_model import ByteLevelModel, TokenizerFile
from .chunking import Chunk
from .encoding import Encoding
from .gpt2_files import Gpt2Files, read_gpt2_files
from .hf_tokenizer_json import parse_tokenizer_json, read_tokenizer_json
from .merges import merges_to_ranks, ranks_to_merges
from .minbpe_model import MinbpeModel, dump_minbpe_model, load_minbpe_model
from .openai import (
    CL100K_BASE,
    GPT2,
    O200K_BASE,
    O200K_HARMONY,
    OPENAI_ENCODINGS,
    P50K_BASE,
    P50K_EDIT,
    R50K_BASE,
    EncodingSpec,
)
from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN, PATTERNS
from .offsets import TokenOffsets
from .piece_cache import PieceCacheStats
from .pre_tokenizer import PrefixSpace, Split
from .stream_decoder import StreamDecoder
from .tekken_json import read_tekken_json
from .tiktoken_ranks import dump_tiktoken_ranks, load_tiktoken_ranks
from .training import TrainingResult, train
from .truncation import Truncation

__all__ = [
    "Encoding",
    "ByteLevelModel",
    "TokenizerFile",
    "AddedToken",
    "Split",
    "PrefixSpace",
    "read_tokenizer_json",
    "parse_tokenizer_json",
    "read_tekken_json",
    "read_gpt2_files",
    "Gpt2Files",
    "PieceCacheStats",
    "BudgetMethods",
    "TokenOffsets",
    "Truncation",
    "Chunk",
    "StreamDecoder",
    "byte_pair_encode",
    "GPT2_PATTERN",
    "GPT4_PATTERN",
    "O200K_PATTERN",
    "PATTERNS",
    "EncodingSpec",
    "GPT2",
    "R50K_BASE",
    "P50K_BASE",
    "P50K_EDIT",
    "CL100K_BASE",
    "O200K_BASE",
    "O200K_HARMONY",
    "OPENAI_ENCODINGS",
    "load_tiktoken_ranks",
    "dump_tiktoken_ranks",
    "MinbpeModel",
    "load_minbpe_model",
    "dump_minbpe_model",
    "merges_to_ranks",
    "ranks_to_merges",
    "train",
    "TrainingResult",
]
