"""tokend's engine: byte-level BPE (encode, count, decode, train), its file formats, and the budget
operations every family shares (offsets, truncate, chunk, streaming decode). Pure computation: no I/O
beyond parsing bytes handed to it, no gRPC, no metrics.

>>> from tokend.engine import Encoding, train, GPT4_PATTERN
"""

from .bpe import byte_pair_encode
from .budget_methods import BudgetMethods
from .chunking import Chunk
from .encoding import Encoding
from .merges import merges_to_ranks, ranks_to_merges
from .minbpe_model import MinbpeModel, dump_minbpe_model, load_minbpe_model
from .openai import CL100K_BASE, O200K_BASE, OPENAI_ENCODINGS, EncodingSpec
from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN, PATTERNS
from .offsets import TokenOffsets
from .piece_cache import PieceCacheStats
from .stream_decoder import StreamDecoder
from .tiktoken_ranks import dump_tiktoken_ranks, load_tiktoken_ranks
from .training import TrainingResult, train
from .truncation import Truncation

__all__ = [
    "Encoding",
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
    "CL100K_BASE",
    "O200K_BASE",
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
