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
" " + part + " a" and dropping the final " a" piece (a part ending in non-WS needs no follower: a boundary
comes after it whatever follows, property 1), so the ids can be cached by the part. The text's last
part has no such follower: when it ends in WS (where `$` matters) it is computed on its own, uncached.
`\S` of `re` is "not str.isspace()", a superset of White_Space, so it may split less often, never wrongly.

>>> split_words("Hello big  world\n    x")  # chunks "Hello", " big", " ", " world\n   ", " x"
['Hello', 'big', '', 'world\n   ', 'x']

Rejected (perf pass 2026-11-25): rewriting the remaining per-miss loops of `chunk_ids` with C-level
`compress`/`filter`/`deque(map(...))`: not measurable (+-3%, within the noise of interleaved runs).
Rejected: other spellings of the split regex, `(?<=\S) | (?=\S)` and `(?<=[^\s]) | (?=[^\s])` (1.6-2.3x
slower: no literal " " to scan for) or `" (?<=\S )| (?=\S)"` (same speed); `str.split(" ")` (2x faster)
is exact only when no space lacks a non-whitespace neighbour, which no English document of the benchmark
met (every one has a double space somewhere), and checking it costs about what it saves.
Not done: splitting "word." into " word" + "." on a chunk miss (exact for ASCII letters + one trailing
mark) — only 7% of the steady-state chunk misses have that shape (English and code); the misses are
mostly parts with newlines and indentation ("word\n    ").

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

    The misses of one call are computed together: one regex pass over " p1 p2 ... pn" for the parts that
    end in non-whitespace (a boundary follows them whatever comes next, property 1) and one over
    " q1 a q2 a ... qn a" for the others (each followed by the context " a", which makes the boundary of
    property 2), then the pieces are grouped back by offsets. The text's last part, when it ends in
    whitespace (where `$` matters), is computed on its own and never cached.
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
        # A part ending in non-whitespace is followed by a boundary whatever comes next (property 1), so
        # such parts are joined by their own " " with no context; only the others need the " a".
        # Measured (with the `sum` grouping of `_compute_chunks`): steady encode/count +1-4% over giving
        # every part the context, whose " a" pieces were ~20% of the regex output and lookups on English.
        open_parts = [part for part in group if not part or part[-1].isspace()]
        if open_parts:
            if len(open_parts) < len(group):
                closed_parts = [part for part in group if part and not part[-1].isspace()]
                computed.update(_compute_chunks(closed_parts, "", findall, pieces))
            computed.update(_compute_chunks(open_parts, _CONTEXT, findall, pieces))
        else:
            computed.update(_compute_chunks(group, "", findall, pieces))
    for index, part in zip(missing, missing_parts):
        found[index] = computed[part]
    if last_is_open:
        computed.pop(last, None)  # its value above has end-of-text semantics: never cache it
    chunks.add_computed(computed)
    return found


def _compute_chunks(
    group: list[str], context: str, findall: Callable[[str], list[str]], pieces: PieceCache
) -> zip:
    """(part, ids of " " + part) for each part of `group`, from one regex pass over
    " p1<context> p2<context> ... pn<context>"; `context` is "" or " a" (see `chunk_ids`)."""
    split = findall(" " + (context + " ").join(group) + context)
    piece_ids = list(map(pieces.get, split))
    pieces.note_lookups(len(split))
    if None in piece_ids:
        pieces.fill_missing(split, piece_ids)
    # Group pieces back into chunks with C-level passes: chunk k ends at the piece whose end offset is the
    # chunk's end offset (each step adds the context, " " and the part); with a context, its one piece
    # (" a") follows, so chunk k+1 starts one piece later.
    step = len(context) + 1
    chunk_ends = set(accumulate(map(step.__add__, map(len, group)), initial=-len(context)))
    ends = list(compress(count(1), map(chunk_ends.__contains__, accumulate(map(len, split)))))
    skip = 1 if context else 0
    starts = [0, *[end + skip for end in ends[:-1]]]
    # sum(..., ()) is ~2x faster than tuple(chain(...)) for a few tuples but quadratic: only for short runs.
    return zip(
        group,
        [
            piece_ids[start]
            if end - start == 1
            else (sum(piece_ids[start:end], ()) if end - start <= 8 else tuple(_flatten(piece_ids[start:end])))
            for start, end in zip(starts, ends)
        ],
    )


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
