"""sentencepiece's model file (`ModelProto`, what `spm_train` writes as `NAME.model`) as plain data.

    >>> model = SentencePieceModel(pieces=("<unk>", "<s>", "</s>", "a", "b", "ab"), scores=(0, 0, 0, -1, -2, -0.5),
    ...                            types=(PieceType.UNKNOWN,) + (PieceType.CONTROL,) * 2 + (PieceType.NORMAL,) * 3)
    >>> data = dump_sentencepiece_model(model)      # a .model file: bytes sentencepiece itself loads
    >>> loaded = load_sentencepiece_model(data, what="toy.model")
    >>> loaded.pieces[1], loaded.types[1], loaded == model
    ('<s>', <PieceType.CONTROL: 3>, True)

The loader checks what `SentencePieceProcessor.Load` checks (non-empty unique pieces, one `<unk>`, byte
pieces iff `byte_fallback` and then all 256 of them) and refuses with `ModelFormatError` what this engine
does not implement, saying so: a model type other than BPE and Unigram (word, char), a denormalizer (a
charsmap applied to decoded text), NaN scores (and infinite ones in Unigram models), a piece over 4 KiB or
32 MiB of piece text in all (the encoder's tables grow with it; real vocabularies are far smaller). A charsmap
that does not decode is refused when the encoding is built.

Not handled: the training options (`vocab_size`, `split_by_*`, `character_coverage`, ...) beyond reporting
them; sentencepiece reads them only while training. The few trainer fields that matter when encoding are
`treat_whitespace_as_suffix`, `byte_fallback`, `unk_surface` and the special pieces' names.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from ...errors import ModelFormatError
from . import tokend_sentencepiece_model_pb2 as model_pb2

__all__ = [
    "PieceType",
    "NormalizerSpec",
    "SentencePieceModel",
    "load_sentencepiece_model",
    "dump_sentencepiece_model",
    "byte_piece",
]

# Bounds on what a model file may ask the encoder to build (its tables grow with the text of all pieces) and
# to do (each position of a text walks the pieces that start there, as deep as the longest: a user-defined
# piece of 4,000 "a"s made a 1 MB text cost 17 s). sentencepiece's trainer caps pieces at 16 characters by
# default (512 at most); the longest piece of the real models in the tests is 48 bytes (16 "▁"), and real
# vocabularies hold a few MB of piece text. Larger is refused rather than allocated.
MAX_PIECE_BYTES = 256
MAX_TOTAL_PIECE_BYTES = 32 << 20

# The model types of TrainerSpec.ModelType, by number.
_MODEL_TYPES = {1: "unigram", 2: "bpe", 3: "word", 4: "char"}


class PieceType(enum.IntEnum):
    """sentencepiece's `ModelProto.SentencePiece.Type` (the same numbers as GGUF's `token_type`)."""

    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


def byte_piece(byte: int) -> str:
    """The piece byte fallback uses for one byte: `<0x0A>` (upper-case hex, as sentencepiece writes it)."""
    return f"<0x{byte:02X}>"


@dataclass(frozen=True)
class NormalizerSpec:
    """How text is normalized before BPE (sentencepiece's NormalizerSpec; defaults are its defaults)."""

    name: str = ""  # informative only: "identity", "nmt_nfkc", "nfkc_cf", ... (the charsmap is what acts)
    precompiled_charsmap: bytes = b""  # empty: no character rewriting (identity)
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True
    escape_whitespaces: bool = True


@dataclass(frozen=True)
class SentencePieceModel:
    """Everything a SentencePiece BPE encoding needs, read from (or written to) a `.model` file.

    `pieces[i]`, `scores[i]`, `types[i]` describe id i. The special ids are those of the pieces named by the
    trainer spec (`<unk>`, `<s>`, `</s>`, `<pad>` by default), or None when the vocabulary lacks them.
    """

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[PieceType, ...]
    normalizer: NormalizerSpec = field(default_factory=NormalizerSpec)
    treat_whitespace_as_suffix: bool = False
    byte_fallback: bool = False
    unk_surface: str = " \u2047 "
    unk_piece: str = "<unk>"
    bos_piece: str = "<s>"
    eos_piece: str = "</s>"
    pad_piece: str = "<pad>"
    model_type: str = "bpe"
    # Training options, reported but never used when encoding (see module docstring).
    trainer_options: dict = field(default_factory=dict, compare=False)

    def piece_id(self, piece: str) -> int | None:
        try:
            return self.pieces.index(piece)
        except ValueError:
            return None


def load_sentencepiece_model(data: bytes, *, what: str = "sentencepiece model") -> SentencePieceModel:
    """Parse and check a `.model` file; `ModelFormatError` (naming `what`) for anything we cannot encode with."""
    proto = model_pb2.ModelProto()
    try:
        proto.ParseFromString(bytes(data))
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ModelFormatError(f"{what} is not a sentencepiece model file (ModelProto): {error}") from None
    if not proto.pieces:
        raise ModelFormatError(f"{what} has no pieces: is it a sentencepiece .model file?")
    trainer = proto.trainer_spec
    model_type = _MODEL_TYPES.get(trainer.model_type, str(trainer.model_type))
    if model_type not in ("bpe", "unigram"):
        raise ModelFormatError(
            f"{what} is a sentencepiece {model_type} model; tokend implements sentencepiece BPE and Unigram "
            "(train with --model_type=bpe or unigram, or use sentencepiece itself for this model)"
        )
    if proto.HasField("denormalizer_spec") and proto.denormalizer_spec.precompiled_charsmap:
        raise ModelFormatError(f"{what} has a denormalizer (rules applied to decoded text); tokend does not implement it")
    pieces: list[str] = []
    scores: list[float] = []
    types: list[PieceType] = []
    seen: set[str] = set()
    total_bytes = 0
    for index, entry in enumerate(proto.pieces):
        if len(entry.piece) > MAX_PIECE_BYTES:
            raise ModelFormatError(f"{what}: piece {index} is {len(entry.piece)} bytes long; tokend accepts up to {MAX_PIECE_BYTES}")
        total_bytes += len(entry.piece)
        if total_bytes > MAX_TOTAL_PIECE_BYTES:
            raise ModelFormatError(f"{what}: its pieces hold more than {MAX_TOTAL_PIECE_BYTES >> 20} MiB of text; not a vocabulary tokend loads")
        piece = _utf8(entry.piece, what=f"piece {index} of {what}")
        if not piece:
            raise ModelFormatError(f"{what}: piece {index} is empty (sentencepiece refuses this too)")
        piece_type = PieceType(entry.type)
        if "\0" in piece:
            # sentencepiece 0.2.3 ignores a "\0" piece that is UNUSED (and makes it so under byte fallback, for
            # converters that add one); any other piece with a NUL it refuses.
            if piece != "\0" or not (piece_type == PieceType.UNUSED or trainer.byte_fallback):
                raise ModelFormatError(f"{what}: piece {index} contains a NUL character (sentencepiece refuses this too)")
            piece_type = PieceType.UNUSED
        if piece in seen:
            raise ModelFormatError(f"{what}: piece {index} {piece!r} is defined twice")
        if math.isnan(entry.score) or (model_type == "unigram" and math.isinf(entry.score)):
            raise ModelFormatError(f"{what}: piece {index} {piece!r} has a score of {entry.score} (sentencepiece "
                                   "refuses NaN, and infinities in Unigram models)")
        seen.add(piece)
        pieces.append(piece)
        scores.append(entry.score)
        types.append(piece_type)
    byte_fallback = trainer.byte_fallback
    _check_special_pieces(pieces, types, byte_fallback, what)
    spec = proto.normalizer_spec
    normalizer = NormalizerSpec(
        name=_utf8(spec.name, what=f"normalizer name of {what}"),
        precompiled_charsmap=bytes(spec.precompiled_charsmap),
        add_dummy_prefix=spec.add_dummy_prefix,
        remove_extra_whitespaces=spec.remove_extra_whitespaces,
        escape_whitespaces=spec.escape_whitespaces,
    )
    return SentencePieceModel(
        pieces=tuple(pieces),
        scores=tuple(scores),
        types=tuple(types),
        normalizer=normalizer,
        treat_whitespace_as_suffix=trainer.treat_whitespace_as_suffix,
        byte_fallback=byte_fallback,
        unk_surface=_utf8(trainer.unk_surface, what=f"unk_surface of {what}"),
        unk_piece=_utf8(trainer.unk_piece, what=f"unk_piece of {what}") or "<unk>",
        bos_piece=_utf8(trainer.bos_piece, what=f"bos_piece of {what}") or "<s>",
        eos_piece=_utf8(trainer.eos_piece, what=f"eos_piece of {what}") or "</s>",
        pad_piece=_utf8(trainer.pad_piece, what=f"pad_piece of {what}") or "<pad>",
        model_type=model_type,
        trainer_options={
            "split_digits": trainer.split_digits,
            "split_by_whitespace": trainer.split_by_whitespace,
            "split_by_unicode_script": trainer.split_by_unicode_script,
            "split_by_number": trainer.split_by_number,
            "allow_whitespace_only_pieces": trainer.allow_whitespace_only_pieces,
            "vocab_size": trainer.vocab_size,
        },
    )


def dump_sentencepiece_model(model: SentencePieceModel) -> bytes:
    """The `.model` bytes of `model` (deterministic), loadable by sentencepiece and by `load_sentencepiece_model`."""
    proto = model_pb2.ModelProto()
    for piece, score, piece_type in zip(model.pieces, model.scores, model.types):
        entry = proto.pieces.add()
        entry.piece = piece.encode("utf-8")
        entry.score = score
        entry.type = int(piece_type)
    trainer = proto.trainer_spec
    trainer.model_type = model_pb2.TrainerSpec.UNIGRAM if model.model_type == "unigram" else model_pb2.TrainerSpec.BPE
    trainer.vocab_size = len(model.pieces)
    trainer.treat_whitespace_as_suffix = model.treat_whitespace_as_suffix
    trainer.byte_fallback = model.byte_fallback
    trainer.unk_surface = model.unk_surface.encode("utf-8")
    for name in ("unk", "bos", "eos", "pad"):
        piece = getattr(model, f"{name}_piece")
        setattr(trainer, f"{name}_piece", piece.encode("utf-8"))
        piece_id = model.piece_id(piece)
        setattr(trainer, f"{name}_id", -1 if piece_id is None else piece_id)
    for option in ("split_digits", "split_by_whitespace", "allow_whitespace_only_pieces"):
        if option in model.trainer_options:
            setattr(trainer, option, bool(model.trainer_options[option]))
    spec = proto.normalizer_spec
    spec.name = model.normalizer.name.encode("utf-8")
    if model.normalizer.precompiled_charsmap:
        spec.precompiled_charsmap = model.normalizer.precompiled_charsmap
    spec.add_dummy_prefix = model.normalizer.add_dummy_prefix
    spec.remove_extra_whitespaces = model.normalizer.remove_extra_whitespaces
    spec.escape_whitespaces = model.normalizer.escape_whitespaces
    return proto.SerializeToString(deterministic=True)


def _check_special_pieces(pieces: list[str], types: list[PieceType], byte_fallback: bool, what: str) -> None:
    unknown = [index for index, piece_type in enumerate(types) if piece_type == PieceType.UNKNOWN]
    if len(unknown) != 1:
        raise ModelFormatError(
            f"{what} has {len(unknown)} pieces of type UNKNOWN; sentencepiece requires exactly one (<unk>)"
        )
    bytes_found: set[int] = set()
    for index, (piece, piece_type) in enumerate(zip(pieces, types)):
        if piece_type != PieceType.BYTE:
            continue
        if not byte_fallback:
            raise ModelFormatError(f"{what}: byte piece {index} {piece!r} is present although byte_fallback is off")
        value = _byte_of(piece)
        if value is None:
            raise ModelFormatError(f"{what}: piece {index} {piece!r} has type BYTE but is not of the form <0xNN>")
        bytes_found.add(value)
    if byte_fallback and len(bytes_found) != 256:
        raise ModelFormatError(
            f"{what} sets byte_fallback but has {len(bytes_found)} of the 256 byte pieces <0x00>..<0xFF>"
        )


def _byte_of(piece: str) -> int | None:
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        digits = piece[3:5]
        if all(c in "0123456789ABCDEF" for c in digits):
            return int(digits, 16)
    return None


def _utf8(data: bytes, *, what: str) -> str:
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"{what} is not valid UTF-8: {error}") from None
