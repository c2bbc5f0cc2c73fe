"""Word chunks: a cheap, exact coarse split that lets whole words skip the regex on a cache hit.

The split patterns of GPT-2, cl100k_base and o200k_base share a property: at a space that follows a
non-whitespace character there is always a piece boundary, and the pieces after it depend only on the text
after it. Proof sketch, for each pattern: the piece containing the non-whitespace character before the
space cannot continue over the space — letter/contraction alternatives end in letters or marks, digit
alternatives in digits, punctuation alternatives in punctuation or CR/LF/"/", and whitespace alternatives
cannot contain the non-whitespace character. A match at the space never looks behind (no look-behind in
the patterns), and no piece inside a chunk reaches its end with whitespace (chunks end in non-whitespace),
so `$` and `(?!\\S)` behave the same in the chunk as in the whole text.

So `re.split(r"(?<=\\S) ", text)` (C, ~60 MB/s, 3x the full regex) yields parts; part k >= 1 stands for the
text " " + part, whose ids are a pure function of the part and can be cached by it. `\\S` of `re` is
"not str.isspace()", a superset of Unicode White_Space, so it may split less often, never wrongly.

>>> split_words("Hello big  world")
['Hello', 'big  world']

Not handled: other patterns (a trained model may use any regex): `Encoding` uses word chunks only for the
patterns listed in `CHUNKABLE_PATTERNS`, whose property the conformance tests check against tiktoken.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate, chain, compress, count, islice
from operator import not_

from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN
from .piece_cache import PieceCache

__all__ = ["split_words", "chunk_ids", "chunk_seed", "CHUNKABLE_PATTERNS"]

_flatten = chain.from_iterable


def _len_plus_one(part: str) -> int:
    return len(part) + 1

CHUNKABLE_PATTERNS = frozenset({GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN})

split_words = re.compile(r"(?<=\S) ").split


def chunk_ids(
    parts: list[str],
    chunks: PieceCache,
    findall: Callable[[str], list[str]],
    piece_lookup: Callable[[str], tuple[int, ...]],
    pieces: PieceCache,
) -> list[tuple[int, ...]]:
    """Ids of " " + part for each of parts[1:], from the chunk cache `chunks` (read with `.get`).

    The misses of one call are computed together: one regex pass over the distinct missing parts joined
    by spaces (each join is a chunk boundary, because every part except the text's last ends in
    non-whitespace), then the pieces are grouped back by length. The text's last part may end in
    whitespace (where `$` matters), so it is computed on its own.
    """
    found = list(map(chunks.get, islice(parts, 1, None)))  # None where missing (ids are never empty)
    chunks.note_lookups(len(found))
    if None not in found:
        return found
    missing = list(compress(range(len(found)), map(not_, found)))
    missing_parts = [parts[index + 1] for index in missing]
    last = parts[-1]
    computed: dict[str, tuple[int, ...]] = {}
    if not last or last[-1].isspace():
        computed[last] = tuple(_flatten(map(piece_lookup, findall(" " + last))))
        distinct = [part for part in dict.fromkeys(missing_parts) if part != last]
    else:
        distinct = list(dict.fromkeys(missing_parts))
    # ASCII parts apart from the rest: an all-ASCII join takes the fast `re` path (ascii_patterns).
    ascii_parts = [part for part in distinct if part.isascii()]
    other_parts = [part for part in distinct if not part.isascii()] if len(ascii_parts) < len(distinct) else []
    for group in (ascii_parts, other_parts):
        if not group:
            continue
        split = findall(" " + " ".join(group))
        piece_ids = list(map(piece_lookup, split))
        pieces.note_lookups(len(split))
        # Group pieces back into chunks with C-level passes: a chunk ends where a piece's end offset equals
        # a chunk's end offset (every chunk is " " + part, and chunk boundaries are piece boundaries).
        chunk_ends = set(accumulate(map(_len_plus_one, group)))
        ends = list(compress(count(1), map(chunk_ends.__contains__, accumulate(map(len, split)))))
        starts = [0, *ends[:-1]]
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
    chunks.add_computed(computed)
    return found


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
