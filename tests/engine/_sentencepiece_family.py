"""A SentencePiece family for the budget tests: the parts of the engine contract that offsets, truncate, chunk
and the stream decoder use, over the `sentencepiece` library itself, plus the family hook `token_surfaces`
with SentencePiece's leading-space rule.

It stands in for tokend's own SentencePiece class (built in parallel) to show that the budget operations need
nothing but the contract and the hook: it inherits `BudgetMethods` and is no `Encoding`. Its ids are the
library's (the oracle); only `token_surfaces` is ours, and the tests hold `decode` built on it to
`SentencePieceProcessor.decode`.

The rule, as sentencepiece's `Decode` (0.2.x) applies it: while the sequence is "at start" (nothing visible
decoded, no leading "▁" consumed yet), a piece's leading "▁" is dropped when the model adds a dummy prefix
or removes extra whitespace; with add_dummy_prefix one "▁" only (the state ends), with
remove_extra_whitespaces every leading one. Control pieces (<s>, </s>) decode to nothing and keep the
state; byte pieces <0xNN> add their byte; the unknown piece adds " ⁇ ".
"""

from __future__ import annotations

import io
from pathlib import Path

import sentencepiece
from sentencepiece import sentencepiece_model_pb2

from tokend.engine.budget_methods import BudgetMethods
from tokend.errors import UnknownTokenIdError

ALICE = Path(__file__).resolve().parents[2] / "corpus" / "alice29.txt"
SPACE = "\u2581"
UNKNOWN_SURFACE = " \u2047 ".encode("utf-8")


def train_model(**options) -> bytes:
    """A BPE model trained here on alice29.txt (no download), as serialized ModelProto bytes."""
    lines = [line for line in ALICE.read_text(encoding="utf-8").splitlines() if line.strip()]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=800, model_type="bpe", minloglevel=2, **options
    )
    return model.getvalue()


def _repair(text: str) -> str:  # lone surrogates as the engine repairs them (the library refuses them)
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class SentencePieceFamily(BudgetMethods):
    def __init__(self, name: str, model: bytes) -> None:
        self.name = name
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        spec = sentencepiece_model_pb2.ModelProto.FromString(model).normalizer_spec
        self.strips_leading_space = spec.add_dummy_prefix or spec.remove_extra_whitespaces
        self.strips_every_leading_space = spec.remove_extra_whitespaces
        self.n_vocab = self.processor.get_piece_size()
        self.max_token_value = self.n_vocab - 1
        self.special_tokens_set: set[str] = set()
        self._pieces = [self.processor.id_to_piece(token) for token in range(self.n_vocab)]

    # ---- the contract, as far as the budget operations use it ----
    def encode(self, text: str, *, allowed_special=frozenset(), disallowed_special="all") -> list[int]:
        return self.processor.encode(_repair(text))

    def encode_ordinary(self, text: str) -> list[int]:
        return self.encode(text)

    def count(self, text: str, **policy) -> int:
        return len(self.encode(text))

    def decode_bytes(self, tokens) -> bytes:
        return b"".join(self.token_surfaces(tokens)[0])

    def decode(self, tokens, errors: str = "replace") -> str:
        return self.decode_bytes(tokens).decode("utf-8", errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        return self.token_surfaces([token], at_start=False)[0][0]

    # ---- the family hook ----
    def token_surfaces(self, tokens, *, at_start: bool = True) -> tuple[list[bytes], bool]:
        processor, surfaces = self.processor, []
        for token in tokens:
            if not (isinstance(token, int) and 0 <= token < self.n_vocab):
                raise UnknownTokenIdError(token, n_vocab=self.n_vocab)
        for token in tokens:
            if processor.is_control(token):
                surfaces.append(b"")
                continue
            if processor.is_unknown(token):
                surfaces.append(UNKNOWN_SURFACE)
            elif processor.is_byte(token):
                surfaces.append(bytes([int(self._pieces[token][3:5], 16)]))
            else:
                piece, consumed = self._pieces[token], False
                if at_start and self.strips_leading_space and piece.startswith(SPACE):
                    piece, consumed = piece[1:], not self.strips_every_leading_space
                surface = piece.replace(SPACE, " ").encode("utf-8")
                surfaces.append(surface)
                if not surface and not consumed:
                    continue  # an empty surface, nothing consumed: still at the start
            at_start = False
        return surfaces, at_start
