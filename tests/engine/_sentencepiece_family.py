"""The SentencePiece family of the budget tests: tokend's `SentencePieceEncoding` over models trained here
with sentencepiece's trainer on alice29.txt, each with `sentencepiece`'s processor over the same bytes as its
oracle.

The decoding rule the tests hold the hook to, as sentencepiece's `Decode` (0.2.x) applies it: while the
sequence is "at start" (nothing visible decoded, no leading "▁" consumed yet), a piece's leading "▁" is
dropped when the model adds a dummy prefix or removes extra whitespace; with add_dummy_prefix one "▁" only
(the state ends), with remove_extra_whitespaces every leading one. Control pieces (<s>, </s>) decode to
nothing and keep the state; byte pieces <0xNN> add their byte; the unknown piece adds " ⁇ ".
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import sentencepiece

from tokend.engine.sentencepiece import SentencePieceEncoding

ALICE = Path(__file__).resolve().parents[2] / "corpus" / "alice29.txt"

# name -> trainer options
MODELS = {
    # identity normalizer, whitespace kept, dummy prefix, byte fallback (how Llama/Mistral models are built)
    "llama-like": dict(normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True,
                       add_dummy_prefix=True),
    "nfkc": {},  # the trainer's defaults: nmt_nfkc, extra whitespace removed, no byte fallback
}


def train_model(**options) -> bytes:
    """A BPE model trained here on alice29.txt (no download), as serialized ModelProto bytes."""
    lines = [line for line in ALICE.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=800, model_type="bpe", minloglevel=2, **options
    )
    return model.getvalue()


@lru_cache(maxsize=None)
def model_bytes(name: str) -> bytes:
    return train_model(**MODELS[name])


@lru_cache(maxsize=None)
def family(name: str) -> SentencePieceEncoding:
    """tokend's encoding of the model `name`."""
    return SentencePieceEncoding.from_model_file(name, model_bytes(name))


@lru_cache(maxsize=None)
def oracle(name: str) -> sentencepiece.SentencePieceProcessor:
    """sentencepiece's processor over the same model bytes."""
    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes(name))
