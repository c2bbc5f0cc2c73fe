"""Decoding SentencePiece ids: the bytes each token contributes to the text, and sentencepiece's UTF-8 rule.

    >>> from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceModel
    >>> model = SentencePieceModel(  # a toy vocabulary: ids 0-2 special, then pieces with their merge scores
    ...     pieces=("<unk>", "<s>", "</s>", "\u2581", "h", "i", "\u2581h", "\u2581hi", "!"),
    ...     scores=(0, 0, 0, -5, -6, -7, -2, -1, -8),
    ...     types=(PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL) + (PieceType.NORMAL,) * 6,
    ...     normalizer=NormalizerSpec(name="identity", remove_extra_whitespaces=False))
    >>> decoder = SurfaceDecoder(SurfaceTable(model))
    >>> decoder.feed([1, 7, 7])                     # "<s>", "▁hi", "▁hi"
    [b'', b'hi', b' hi']
    >>> decoder.feed([8]), decoder.at_start         # "!" (later: same state)
    ([b'!'], False)

A token's *surface* is what `SentencePieceProcessor.decode` makes of it at its position:
- a CONTROL piece (`<s>`, `</s>`, `[INST]`, ...) contributes nothing;
- the UNKNOWN piece contributes the model's `unk_surface` (" ⁇ " by default);
- a BYTE piece `<0xNN>` contributes the byte NN (runs of byte pieces are decoded as UTF-8 together);
- any other piece contributes its text with `▁` replaced by a space, except that the *leading whitespace
  rule* drops one leading `▁`: while nothing has been decoded yet, the first piece that starts with `▁` loses
  it, if the model adds a dummy prefix or removes extra whitespace; with `remove_extra_whitespaces`, every
  piece that starts with `▁` loses one `▁` for as long as the decoded text is still empty.

The rule is the same with `treat_whitespace_as_suffix`, as in sentencepiece's decoder, which does not look at
that option: there a leading `▁` is a space of the text and still dropped, and the dummy `▁` at the end
stays a space (" a" encodes as "▁", "a▁" and decodes to "a "; the budget operations spell such a model's
text otherwise: encoding.py).

The rule depends only on the tokens before, never after, so surfaces are prefix-stable: feeding ids in
pieces (streaming) yields exactly the bytes of decoding them all at once. `SurfaceDecoder` keeps that state.

Text: sentencepiece turns each *run* of consecutive byte pieces into text with its own UTF-8 decoder, which
replaces *each* byte of a malformed sequence by U+FFFD (b"\\xe2\\x82A" -> "\\ufffd\\ufffdA", where Python's
decoder gives one U+FFFD for the truncated sequence). Any other token ends a run, even one with no surface
(a control piece): [<0xE2>, <s>, <0x82>, <0xAC>] is three U+FFFD, not "€". `decode_text` does exactly that;
other `errors` handlers get the same per-byte treatment (each invalid byte passed to Python's handler alone).
A streaming decoder must therefore hold back the undecodable tail of a byte run until the run ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from ._native import decode_run, decode_surfaces
from .model_file import PieceType, SentencePieceModel
from .normalizer import WHITESPACE_MARK, decode_utf8_char

__all__ = ["SurfaceDecoder", "SurfaceTable", "character_offsets", "decode_text", "decode_utf8", "surfaces_text"]

_CONTROL, _UNKNOWN, _BYTE, _TEXT = 0, 1, 2, 3
_NATIVE_ERRORS = ("replace", "strict")  # the handlers sp_byte_runs.c applies itself


class SurfaceTable:
    """Per id: its kind and context-free surface bytes (▁ already a space). Shared by all decoders of a model."""

    def __init__(self, model: SentencePieceModel) -> None:
        kinds: list[int] = []
        surfaces: list[bytes] = []
        leading_mark: list[bool] = []  # the piece starts with ▁ (its first surface byte is that space)
        unk_surface = model.unk_surface.encode("utf-8")
        for piece, piece_type in zip(model.pieces, model.types):
            data = piece.encode("utf-8")
            if piece_type == PieceType.CONTROL:
                kinds.append(_CONTROL)
                surfaces.append(b"")
            elif piece_type == PieceType.UNKNOWN:
                kinds.append(_UNKNOWN)
                surfaces.append(unk_surface)
            elif piece_type == PieceType.BYTE:
                kinds.append(_BYTE)
                surfaces.append(bytes([int(piece[3:5], 16)]))
            else:
                kinds.append(_TEXT)
                surfaces.append(data.replace(WHITESPACE_MARK, b" "))
            leading_mark.append(kinds[-1] == _TEXT and data.startswith(WHITESPACE_MARK))
        self.kinds = kinds
        self.surfaces = surfaces  # id -> bytes at a position past the start of the text
        # Byte pieces of bytes 0x80-0xFF: only these can form or break a multi-byte character. An ASCII byte
        # piece (Llama's <0x0A> for every newline) decodes to its character wherever it stands, and ends a byte
        # run without changing how the bytes around it decode, so it can be joined like text.
        self.high_byte_ids = frozenset(i for i, (kind, s) in enumerate(zip(kinds, surfaces)) if kind == _BYTE and s[0] >= 0x80)
        self.leading_mark = leading_mark
        spec = model.normalizer
        self.strips_leading_mark = spec.add_dummy_prefix or spec.remove_extra_whitespaces
        self.strips_every_leading_mark = spec.remove_extra_whitespaces


class SurfaceDecoder:
    """The surfaces of a stream of ids, with sentencepiece's leading-whitespace state carried between calls.

    Ids must be valid (the caller checks them; `KeyError`/`IndexError` otherwise).
    """

    def __init__(self, table: SurfaceTable) -> None:
        self._table = table
        self._at_start = True  # sentencepiece's is_bos_ws: a leading ▁ may still be dropped
        self._text_empty = True  # nothing decoded so far
        self._mark_dropped = False  # the previous text piece lost its leading ▁ (bos_ws_seen)

    @property
    def at_start(self) -> bool:
        """True while the next text piece would still lose a leading `▁` (nothing visible decoded, no `▁`
        consumed): the state `token_surfaces` hands on (budget_methods)."""
        return self._at_start and self._text_empty and not self._mark_dropped

    def feed(self, ids: Iterable[int]) -> list[bytes]:
        table = self._table
        kinds, surfaces = table.kinds, table.surfaces
        if not self._at_start:  # past the start every surface is the token's own: no state left to track
            return list(map(surfaces.__getitem__, ids))
        out: list[bytes] = []
        ids = list(ids)
        for index, token in enumerate(ids):
            if not self._at_start:
                out += map(surfaces.__getitem__, ids[index:])
                break
            kind = kinds[token]
            surface = surfaces[token]
            if kind == _BYTE:  # visible text: no later piece loses its ▁, so every surface on is the token's own
                self._text_empty = False  # (the next feed's first piece of another kind ends the start)
                out += map(surfaces.__getitem__, ids[index:])
                break
            if self._mark_dropped or not self._text_empty:
                self._at_start = False
            dropped = False
            if kind == _TEXT and self._at_start and table.strips_leading_mark and table.leading_mark[token]:
                surface = surface[1:]
                dropped = not table.strips_every_leading_mark
            self._mark_dropped = dropped
            if surface:
                self._text_empty = False
            out.append(surface)
        return out


def decode_utf8(data: bytes, errors: str = "replace") -> str:
    """`data` as text by sentencepiece's rule: each byte of a malformed sequence is one error (see above)."""
    try:
        return data.decode("utf-8")  # the common case: valid UTF-8 decodes the same either way
    except UnicodeDecodeError:
        pass
    if errors in _NATIVE_ERRORS:
        decoded = decode_run(bytes(data), errors == "strict")
        if isinstance(decoded, str):
            return decoded
        raise _malformed(data, decoded, decoded)
    parts: list[str] = []  # another handler: each malformed byte handed to it alone
    start = pos = 0
    end = len(data)
    while pos < end:
        valid, length = decode_utf8_char(data, pos)
        if valid:
            pos += length
            continue
        parts.append(data[start:pos].decode("utf-8"))
        try:
            parts.append(data[pos : pos + 1].decode("utf-8", errors))
        except UnicodeDecodeError as error:
            raise UnicodeDecodeError("utf-8", data, pos, pos + 1, error.reason) from None
        pos += 1
        start = pos
    parts.append(data[start:].decode("utf-8"))
    return "".join(parts)


def decode_text(table: SurfaceTable, ids: Iterable[int], errors: str = "replace") -> str:
    """The text of `ids` exactly as `SentencePieceProcessor.decode` (with `errors="replace"`) gives it."""
    ids = list(ids)
    surfaces = SurfaceDecoder(table).feed(ids)
    if table.high_byte_ids.isdisjoint(ids):  # every surface is whole UTF-8 text
        return b"".join(surfaces).decode("utf-8")
    return surfaces_text(surfaces, errors)


def surfaces_text(surfaces: list[bytes], errors: str = "replace") -> str:
    """The text of surfaces (`SurfaceDecoder.feed`'s) by sentencepiece's rule: each run of one-byte surfaces
    0x80-0xFF (byte pieces': every other surface is UTF-8 text) decoded on its own, one error a malformed byte."""
    if errors in _NATIVE_ERRORS:  # the runs in C: 2 M random byte pieces took 2.2 s a byte at a time here
        decoded = decode_surfaces(surfaces, errors == "strict")
        if isinstance(decoded, str):
            return decoded
        position, run, index = decoded
        raise _malformed(run, index, position)
    parts: list[str] = []
    offset = 0  # bytes of surface before the current group (for error positions)
    for is_byte_run, group in groupby(surfaces, key=_high_byte):
        data = b"".join(group)
        parts.append(_decode_run(data, errors, offset) if is_byte_run else data.decode("utf-8"))
        offset += len(data)
    return "".join(parts)


def _high_byte(surface: bytes) -> bool:
    return len(surface) == 1 and surface[0] >= 0x80


def _malformed(run: bytes, index: int, position: int) -> UnicodeDecodeError:
    # As the per-byte walk raises it: the run as `object`, `position` (in all the decoded bytes) as `start`,
    # and the reason Python gives that one byte alone
    try:
        run[index : index + 1].decode("utf-8")
        reason = "invalid start byte"
    except UnicodeDecodeError as error:
        reason = error.reason
    return UnicodeDecodeError("utf-8", run, position, position + 1, reason)


def _decode_run(run: bytes, errors: str, offset: int) -> str:
    # start and end in the decoded bytes, as decoding them whole gives (the service reports `start` as the
    # error's offset); `object` is only the run, the whole is never joined.
    try:
        return decode_utf8(run, errors)
    except UnicodeDecodeError as error:
        raise UnicodeDecodeError("utf-8", error.object, offset + error.start, offset + error.end, error.reason) from None


def character_offsets(table: SurfaceTable, ids: list[int], surfaces: list[bytes]) -> list[int]:
    """Per token, the index in `decode_text(ids)` of the first character holding its bytes (a token with no bytes:
    where the next character starts). The bytes of a character split over byte pieces share its index."""
    kinds = table.kinds
    offsets = [0] * len(surfaces)
    characters = index = 0
    while index < len(surfaces):
        if kinds[ids[index]] != _BYTE:
            offsets[index] = characters
            characters += len(surfaces[index].decode("utf-8"))
            index += 1
            continue
        end = index
        while end < len(surfaces) and kinds[ids[end]] == _BYTE:
            end += 1
        run = b"".join(surfaces[index:end])  # one byte per token
        pos = 0
        while pos < len(run):  # sentencepiece's decoder: one character per valid sequence or invalid byte
            _, length = decode_utf8_char(run, pos)
            offsets[index + pos : index + pos + length] = [characters] * length
            characters += 1
            pos += length
        index = end
    return offsets
