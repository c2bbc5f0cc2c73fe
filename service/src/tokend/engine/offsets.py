"""Token offsets: which characters and bytes of its input each token of an encoding covers.

>>> from tokend import get_encoding
>>> result = encode_with_offsets(get_encoding("cl100k_base"), "hi 🤖")
>>> result.spans(), result.byte_spans()      # tokens: 'hi', ' \xf0\x9f', '\xa4', '\x96'
([(0, 2), (2, 4), (3, 4), (3, 4)], [(0, 2), (2, 5), (5, 6), (6, 7)])

Definitions (per token i, text = the caller's string):
- `starts[i]`: the index of the first character that contains a byte of the token — tiktoken's
  `decode_with_offsets` offset for the same ids. `ends[i]`: one past the last such character. A token
  holding part of a multi-byte character covers that whole character (three tokens above span the robot,
  the first also the space), so spans of neighbouring tokens overlap exactly where a character is split.
- `byte_starts[i]`, `byte_ends[i]`: where the token's bytes lie in the UTF-8 of the text.
- Lone surrogates: the engine encodes text as tiktoken does, with a lone surrogate replaced by U+FFFD and
  a surrogate pair by the character it encodes. Character offsets still index the caller's string (a pair
  is two indexes there); byte offsets index the UTF-8 of the repaired text, which is what the tokens spell.

How: the ids come from the encoding's `encode`; each token's surface bytes come from the family hook
`token_surfaces` (see budget_methods) — for the first tokens of the sequence as the hook gives them (a family
may treat the start specially), for the rest from a table id -> surface built once per encoding from the same
hook (`surface_table`, flat in native memory). The native walk (`_alignment.prepare(...).run()`) checks that
the surfaces spell the text and computes every offset in one pass (~0.2 s per 10 MB faster than a Python list
of surfaces per call, ~0.4 s faster than a Python loop); it runs with the GIL released and gives up at the
call's stop (`call_stop`), and a caller may run it on a thread of its choosing (`run_alignment`: a service's
bulk lane). Families whose normalizer rewrites the text (NFKC, collapsed whitespace) do not
spell their input; for those `OffsetsUnavailableError` names the first character that differs. A family whose
tokens spell more than the text (`spelling_suffix`: SentencePiece's dummy "▁" with treat_whitespace_as_suffix)
is aligned with the text plus that suffix, and the spans and cuts that reach into it are cut back to the
text's end (the last token's span is shorter, or empty for a lone "▁"). A family whose allowed special tokens
restart the text (`specials_restart_text`: SentencePiece, where `<s>` spells nothing and the text after it
gets its own dummy prefix) is aligned stretch by stretch between its special tokens, each special token
covering its own text.

The same pass yields the cut grid that truncation and chunking use: after how many tokens the text can be
cut on a character boundary, and at which character.
"""

from __future__ import annotations

import threading
import weakref
from array import array
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Literal

from ..errors import OffsetsUnavailableError
from ._alignment import SurfaceTable, prepare
from .special_tokens import resolve_policy, special_token_regex, split_at_specials

__all__ = ["TokenOffsets", "Alignment", "AlignmentRunner", "align_tokens", "encode_with_offsets", "surface_table"]

_TABLE_BATCH = 4096  # ids per hook call while building a table (a batch with an unknown id goes one by one)
_tables: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # encoding -> its SurfaceTable
_tables_lock = threading.Lock()


# ``run_alignment(walk, text_bytes) -> walk()``: runs an alignment's GIL-free walk where the caller wants it
AlignmentRunner = Callable[[Callable[[], Any], int], Any]


def _uint32(buffer: bytes) -> array:
    values = array("I")
    values.frombytes(buffer)
    return values


@dataclass(frozen=True, eq=False)
class Alignment:
    """The encoding of a text with its cut grid (internal to the engine's budget operations).

    cut_tokens[j] tokens of `ids` end exactly at character cut_chars[j] (a character boundary); both are
    non-decreasing uint32 sequences (memoryviews over the native result) from (0, 0) to
    (len(ids), len(text)). `offsets`: the per-token arrays (char_starts, char_ends, byte_starts, byte_ends)
    as bytes, when asked for.
    """

    text: str
    ids: list[int]
    cut_tokens: memoryview
    cut_chars: memoryview
    offsets: tuple[bytes, bytes, bytes, bytes] | None


@dataclass(frozen=True, eq=False)
class TokenOffsets:
    """The ids of a text and, per token, the characters and bytes it covers (parallel sequences).

    `starts`/`ends`/`byte_starts`/`byte_ends` are `array('I')` (one machine word per token, no int objects);
    `spans()` and `byte_spans()` give `(start, end)` pairs.
    """

    ids: list[int]
    starts: array = field(repr=False)
    ends: array = field(repr=False)
    byte_starts: array = field(repr=False)
    byte_ends: array = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    def spans(self) -> list[tuple[int, int]]:
        """`(start, end)` character span of each token: `text[start:end]` contains the token's bytes."""
        return list(zip(self.starts, self.ends))

    def byte_spans(self) -> list[tuple[int, int]]:
        """`(start, end)` byte span of each token in the UTF-8 of the text."""
        return list(zip(self.byte_starts, self.byte_ends))


def align_tokens(
    encoding,
    text: str,
    *,
    allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
    ids: list[int] | None = None,
    offsets: bool = False,
    run_alignment: AlignmentRunner | None = None,
) -> Alignment:
    """Encode `text` (special-token policy as `encode`) and align its tokens with it; `ids`: its encoding,
    when the caller has it already; `offsets`: keep the per-token offsets too; `run_alignment`: how the walk
    (GIL-free) is run, `run_alignment(walk, text_bytes)` returning `walk()` (default: here)."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if ids is None:
        ids = encoding.encode(text, allowed_special=allowed_special, disallowed_special=disallowed_special)
    if getattr(encoding, "specials_restart_text", False) and allowed_special:
        allowed = resolve_policy(encoding.special_tokens_set, allowed_special=allowed_special, disallowed_special=())[0]
        # One pass for many tokens (a pass per token: 20,000 control pieces cost seconds a text)
        if allowed and (special_token_regex(allowed).search(text) is not None if len(allowed) > 16
                        else any(token in text for token in allowed)):
            return _align_segments(encoding, text, ids, allowed, offsets=offsets, run_alignment=run_alignment)
    at_start = getattr(encoding, "spelling_at_start", True)
    suffix = getattr(encoding, "spelling_suffix", "") if ids else ""
    lead = _leading_surfaces(encoding, ids) if at_start else []
    walk = prepare(text + suffix if suffix else text, ids, surface_table(encoding), lead, offsets=offsets)
    aligned = walk.run() if run_alignment is None else run_alignment(walk.run, walk.text_bytes)
    if isinstance(aligned, int):
        raise _unspelled(encoding, text, ids, aligned)
    if suffix:
        aligned = _without_suffix(aligned, text, suffix, offsets)
    cut_tokens, cut_chars = (memoryview(buffer).cast("I") for buffer in aligned[4:])
    return Alignment(text, ids, cut_tokens, cut_chars, aligned[:4] if offsets else None)


def _without_suffix(aligned: tuple, text: str, suffix: str, offsets: bool) -> tuple:
    """`align`'s answer for `text + suffix` made an answer for `text`: spans and cuts that reach into the
    suffix end where the text ends. Only the last tokens spell the suffix, so they get a shorter or empty
    span, as sentencepiece's own piece spans give its dummy "\u2581" nothing."""
    columns = list(aligned)  # the four offset columns, cut_tokens, cut_chars (bytes of uint32)
    limits = {5: len(text)}
    if offsets:
        # the last token ends where text + suffix does
        byte_limit = memoryview(columns[3]).cast("I")[-1] - len(suffix.encode("utf-8"))
        limits.update({0: len(text), 1: len(text), 2: byte_limit, 3: byte_limit})
    for column, limit in limits.items():
        values = memoryview(columns[column]).cast("I")
        past = 0
        while past < len(values) and values[len(values) - 1 - past] > limit:  # non-decreasing: a tail only
            past += 1
        if past:  # one copy of the column, for the columns whose last values change (the ends, the last cut)
            columns[column] = columns[column][: -4 * past] + array("I", [limit] * past).tobytes()
    return tuple(columns)


def _align_segments(encoding, text: str, ids: list[int], allowed: frozenset[str], *, offsets: bool,
                    run_alignment: AlignmentRunner | None) -> Alignment:
    """`align_tokens` for a family whose allowed special tokens restart the text (`specials_restart_text`,
    SentencePiece: a control piece spells nothing and the text after it is encoded as a text of its own):
    each stretch between special tokens is aligned on its own, a special token covers its own text, and
    there are cut points on both sides of it."""
    special_ids = encoding.special_tokens
    joined: list[int] = []
    cut_tokens, cut_chars = array("I", [0]), array("I", [0])
    columns = [array("I") for _ in range(4)]  # char starts, char ends, byte starts, byte ends
    chars = byte_count = 0
    for ordinary, special in split_at_specials(text, allowed):
        if ordinary:
            part = align_tokens(encoding, ordinary, disallowed_special=(), offsets=offsets, run_alignment=run_alignment)
            base = len(joined)
            joined += part.ids
            cut_tokens.extend(token + base for token in part.cut_tokens[1:])
            cut_chars.extend(char + chars for char in part.cut_chars[1:])
            if offsets:
                shifted = [_uint32(column) for column in part.offsets]
                for column, values, shift in zip(columns, shifted, (chars, chars, byte_count, byte_count)):
                    column.extend(value + shift for value in values)
                byte_count = columns[3][-1] if part.ids else byte_count
            chars += len(ordinary)
        if special is not None:
            joined.append(special_ids[special])
            size = len(special.encode("utf-8"))
            for column, value in zip(columns, (chars, chars + len(special), byte_count, byte_count + size)):
                column.append(value)
            chars += len(special)
            byte_count += size
            cut_tokens.append(len(joined))
            cut_chars.append(chars)
    if joined != ids:  # the family's encode is not stretch by stretch after all: say so rather than misalign
        raise _unspelled(encoding, text, ids, 0)
    kept = tuple(column.tobytes() for column in columns) if offsets else None
    return Alignment(text, ids, memoryview(cut_tokens), memoryview(cut_chars), kept)


def encode_with_offsets(
    encoding,
    text: str,
    *,
    allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
    ids: list[int] | None = None,
    run_alignment: AlignmentRunner | None = None,
) -> TokenOffsets:
    """`encode(text, ...)` with each token's character and byte span (see the module docstring); `ids`: that
    encoding, when the caller has computed it (checked against the text as it is aligned); `run_alignment`:
    as `align_tokens`."""
    alignment = align_tokens(
        encoding, text, allowed_special=allowed_special, disallowed_special=disallowed_special, ids=ids, offsets=True,
        run_alignment=run_alignment,
    )
    return TokenOffsets(alignment.ids, *map(_uint32, alignment.offsets))


def surface_table(encoding) -> SurfaceTable:
    """id -> the bytes that token adds to decoded text away from the start of a sequence (None: no such id),
    as a native `SurfaceTable` (`len`, `table[id]`, `nbytes`: one flat block the walk reads without the GIL).

    Built once per encoding object from its `token_surfaces` hook, which the family contract allows: once a
    sequence is past its start, a token's surface depends on the token alone (budget_methods, rule 5).
    cl100k_base's takes 1.06 MB (its list of 100,256 bytes objects, dropped once flattened, 4.8 MB).
    """
    try:
        with _tables_lock:
            table = _tables.get(encoding)
    except TypeError:  # an encoding class without weak references: rebuild per call (correct, slower)
        return _build_surface_table(encoding)
    if table is None:
        table = _build_surface_table(encoding)
        with _tables_lock:
            table = _tables.setdefault(encoding, table)
    return table


def _build_surface_table(encoding) -> SurfaceTable:
    size = encoding.n_vocab
    table: list[bytes | None] = [None] * size
    for first in range(0, size, _TABLE_BATCH):
        batch = list(range(first, min(size, first + _TABLE_BATCH)))
        try:
            table[first : first + len(batch)] = encoding.token_surfaces(batch, at_start=False)[0]
        except KeyError:  # UnknownTokenIdError: ids the encoding leaves undefined
            for token in batch:
                try:
                    table[token] = encoding.token_surfaces([token], at_start=False)[0][0]
                except KeyError:
                    pass
    wrong = next((surface for surface in table if surface is not None and type(surface) is not bytes), None)
    if wrong is not None:
        raise TypeError(f"{type(encoding).__name__}.token_surfaces must give bytes, gave {type(wrong).__name__}")
    return SurfaceTable(table)


def _leading_surfaces(encoding, ids: Sequence[int]) -> list[bytes]:
    """The surfaces of the first tokens, up to where the sequence is past its start (one token for BPE)."""
    count = 1
    while True:
        surfaces, at_start = encoding.token_surfaces(ids[:count], at_start=True)
        if not at_start or count >= len(ids):
            return surfaces
        count *= 4


def _unspelled(encoding, text: str, ids: list[int], token_index: int) -> OffsetsUnavailableError:
    # Where the tokens first spell something else than the text, in characters of the caller's string. The
    # last token's spelling_suffix is not the text's: without it, "rabbit " that a normalizer made "rabbit"
    # + the dummy mark differs at its space (6), not at its end.
    surfaces, _ = encoding.token_surfaces(ids[: token_index + 1], at_start=getattr(encoding, "spelling_at_start", True))
    spelled = b"".join(surfaces).decode("utf-8", "replace")
    suffix = getattr(encoding, "spelling_suffix", "")
    if suffix and token_index >= len(ids) - 1 and spelled.endswith(suffix):
        spelled = spelled[: -len(suffix)]
    position = 0
    while position < min(len(text), len(spelled)) and text[position] == spelled[position]:
        position += 1
    return OffsetsUnavailableError(getattr(encoding, "name", repr(encoding)), position)
