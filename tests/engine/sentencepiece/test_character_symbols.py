"""Characters that occur inside pieces without being pieces themselves (GGUF imports, edited vocabularies) are
symbols of their own: they merge into those pieces, and one left over is unknown (byte fallback: its bytes).
The encoder finds a surviving symbol's bytes from its piece's length, or one character when it is not a
piece (native/sp_module.c, flush_segment): 0 mismatches against sentencepiece with 2- and 3-byte characters
that are no pieces, in segments short and long.
"""

from __future__ import annotations

import random
from functools import lru_cache

import pytest


@lru_cache(maxsize=None)
def _models():
    """llama2_like (byte fallback) without the pieces "é" and "中", with pieces that contain them."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    from tests.engine.sentencepiece.models import model_bytes
    from tokend.engine.sentencepiece import SentencePieceEncoding

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes("llama2_like"))
    kept = [piece for piece in proto.pieces if piece.piece not in ("é", "中")]
    del proto.pieces[:]
    proto.pieces.extend(kept)
    for text, score in (("éa", -1.0), ("a中", -2.0), ("中中", -3.0), ("é中", -4.0), ("aé", -5.0)):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = text, score, piece.NORMAL
    data = proto.SerializeToString()
    return SentencePieceEncoding.from_model_file("characters", data), sentencepiece.SentencePieceProcessor(model_proto=data)


TEXTS = {
    "short": "é a中 中é éa中中 aéé ba",
    "no spaces": "éa中中é中aéb中a" * 20,
    "long": "éa中中é中aéb中a" * 1_000,  # one segment of 11,000 symbols: the passes and the level lists
    "runs": "中" * 9_001 + "é" * 9_000,
}


@pytest.mark.parametrize("label", sorted(TEXTS))
def test_characters_that_are_no_pieces_match_sentencepiece(label):
    ours, oracle = _models()
    text = TEXTS[label]
    assert ours.encode_ordinary(text) == oracle.encode(text)


@pytest.mark.parametrize("seed", range(5))
def test_random_mixes_match_sentencepiece(seed):
    ours, oracle = _models()
    rng = random.Random(seed)
    text = "".join(rng.choices(["é", "中", "a", "b", " ", "éa", "中中"], k=rng.choice([30, 3_000, 12_000])))
    assert ours.encode_ordinary(text) == oracle.encode(text)
