r"""Word chunks: a cheap, exact coarse split that lets whole words skip the regex on a cache hit.

The split patterns of GPT-2, cl100k_base and o200k_base share two properties (WS = Unicode White_Space):
1. at a space that follows a non-WS character there is always a piece boundary;
2. at the last space of a WS run of length >= 2 that is followed by a non-WS character there is always a
   piece boundary (`\s+(?!\S)` stops before it, newline alternatives end before it);
and the pieces after a boundary depend only on the text after it (no pattern looks behind).
Proof sketch of 1: the piece holding the non-WS character cannot continue over the space — letter and
contraction alternatives end in letters or marks, digits in digits, punctuation in punctuation or
CR/LF/"/", whitespace alternatives cannot hold the non-WS character. Of 2: the only alternatives that
hold WS followed by WS are whitespace ones; `\s+(?!\S)` gives back the last space, `\s*[\r\n]`-style ones
end at a newline, and a letter prefix `[^\r\n\p{L}\p{N}]?` must be followed by a letter, not a space.

So `re.split(r" (?:(?<=\S )|(?=\S))", text)` (C, 50-90 MB/s, 3-5x the full regex) yields parts; part k >= 1
stands for the text " " + part, whose pieces depend only on the part and, when the part ends in WS, on
the fact that " " + non-WS follows (property 2 is why it was cut there). Both are captured by encoding
" " + part + " a" and dropping the final " a" piece, so the ids can be cached by the part. The text's last
part has no such follower: when it ends in WS (where `$` matters) it is computed on its own, uncached.
`\S` of `re` is "not str.isspace()", a superset of White_Space, so it may split less often, never wrongly.

>>> split_words("Hello big  world\n    x")  # chunks "Hello", " big", " ", " world\n   ", " x"
['Hello', 'big', '', 'world\n   ', 'x']

Not handled: other patterns (a trained model may use any regex): `Encoding` uses word chunks only for the
patterns listed in `CHUNKABLE_PATTERNS`, whose properties the conformance tests check against tiktoken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate, chain, compress, count, islice
from operator import not_

from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN
from .piece_cache import PieceCache

__all__ = ["split_words", "pieces_before_boundary", "chunk_ids", "chunk_seed", "CHUNKABLE_PATTERNS"]

_flatten = chain.from_iterable

CHUNKABLE_PATTERNS = frozenset({GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN})

split_words = re.compile(r" (?:(?<=\S )|(?=\S))").split

# Appended after a part (and dropped again) so a part ending in whitespace sees what follows it in the text.
_CONTEXT = " a"


def pieces_before_boundary(text: str, findall: Callable[[str], list[str]]) -> list[str]:
    """Pieces of `text` when a chunk boundary (" " + non-whitespace) follows it."""
    if text and text[-1].isspace():
        return findall(text + _CONTEXT)[:-1]
    return findall(text)


def chunk_ids(
    parts: list[str],
    chunks: PieceCache,
    findall: Callable[[str], list[str]],
    piece_lookup: Callable[[str], tuple[int, ...]],
    pieces: PieceCache,
) -> list[tuple[int, ...]]:
    """Ids of " " + part for each of parts[1:], from the chunk cache `chunks` (read with `.get`).

    The misses of one call are computed together: one regex pass over " p1 a p2 a ... pn a" (each part
    followed by the context " a", which is a chunk boundary after any part, see the module docstring),
    then the pieces are grouped back by offsets. The text's last part, when it ends in whitespace (where
    `$` matters), is computed on its own and never cached.
    """
    found = list(map(chunks.get, islice(parts, 1, None)))  # None where missing (ids are never empty)
    chunks.note_lookups(len(found))
    last = parts[-1]
    last_is_open = not last or last[-1].isspace()  # ends the text in whitespace: `$` semantics, uncached
    if last_is_open:
        found[-1] = tuple(_flatten(map(piece_lookup, findall(" " + last))))
    if None not in found:
        return found
    missing = list(compress(range(len(found)), map(not_, found)))
    missing_parts = [parts[index + 1] for index in missing]
    computed: dict[str, tuple[int, ...]] = {}
    distinct = list(dict.fromkeys(missing_parts))
    # ASCII parts apart from the rest: an all-ASCII join takes the fast `re` path (ascii_patterns).
    ascii_parts = [part for part in distinct if part.isascii()]
    other_parts = [part for part in distinct if not part.isascii()] if len(ascii_parts) < len(distinct) else []
    for group in (ascii_parts, other_parts):
        if not group:
            continue
        # " p1 a p2 a ... pn a": every " a" follows its part as the text's next chunk would (see above).
        split = findall(" " + (_CONTEXT + " ").join(group) + _CONTEXT)
        piece_ids = list(map(pieces.get, split))
        pieces.note_lookups(len(split))
        if None in piece_ids:
            pieces.fill_missing(split, piece_ids)
        # Group pieces back into chunks with C-level passes: chunk k ends at the piece whose end offset is
        # the chunk's end offset; the next piece is its " a", so chunk k+1 starts one piece later.
        chunk_ends = set(accumulate(map(len, group), _chunk_end, initial=-2))
        ends = list(compress(count(1), map(chunk_ends.__contains__, accumulate(map(len, split)))))
        starts = [0, *[end + 1 for end in ends[:-1]]]
        computed.update(
            zip(
                group,
                [
                    piece_ids[start] if end - start == 1 else tuple(_flatten(piece_ids[start:end]))
                    for start, end in zip(starts, ends)
                ],
            )
        )
    for index, part in zip(missing, missing_parts):
        found[index] = computed[part]
    if last_is_open:
        computed.pop(last, None)  # its value above has end-of-text semantics: never cache it
    chunks.add_computed(computed)
    return found


def _chunk_end(previous_end: int, part_length: int) -> int:
    # previous chunk's end + its " a" (2) + this chunk's " " + part
    return previous_end + 2 + 1 + part_length


def chunk_seed(
    piece_seed: dict[str, tuple[int, ...]], findall: Callable[[str], list[str]]
) -> dict[str, tuple[int, ...]]:
    """Chunk-cache entries known at load time: every token " x..." that the pattern keeps as one piece
    and that ends in non-whitespace (so it means the same as the text's last part). Keyed by the part
    (without the space)."""
    seed = {}
    for piece, ids in piece_seed.items():
        if len(piece) > 1 and piece[0] == " " and not piece[-1].isspace():
            if findall(piece) == [piece]:
                seed[piece[1:]] = ids
    return seed
