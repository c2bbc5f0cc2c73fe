"""SentencePiece BPE and Unigram: the engine's second family (Llama 2, Mistral 7B, `spm_train` models).

    from tokend.engine.sentencepiece import SentencePieceEncoding
    enc = SentencePieceEncoding.from_model_file("mistral", Path("tokenizer.model").read_bytes())
    enc.encode("Hello world")    # == SentencePieceProcessor.encode: [23325, 2294] with Mistral 7B v3's model

Files: model_file (the `.model` format), charsmap + normalizer (sentencepiece's normalizer), reference (the
encoder in Python, step by step), surface (decoding), encoding (the public class over the native core).
"""

from .encoding import ALGORITHM, ALGORITHMS, SentencePieceEncoding
from .model_file import (
    NormalizerSpec,
    PieceType,
    SentencePieceModel,
    byte_piece,
    dump_sentencepiece_model,
    load_sentencepiece_model,
)

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
    "SentencePieceEncoding",
    "SentencePieceModel",
    "NormalizerSpec",
    "PieceType",
    "byte_piece",
    "load_sentencepiece_model",
    "dump_sentencepiece_model",
]
