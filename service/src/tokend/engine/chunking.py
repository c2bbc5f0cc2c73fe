"""Chunking: a text cut into consecutive pieces whose own encodings each fit a token budget.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> text = "First paragraph, short.\\n\\nSecond paragraph. It has two sentences."
>>> [c.text for c in chunk(enc, text, 10)]
['First paragraph, short.\\n\\n', 'Second paragraph. It has two sentences.']
>>> [(c.start, c.end, c.token_count) for c in chunk(enc, text, 12)]  # the blank line: under half of 12 in
[(0, 42, 8), (42, 64, 5)]

Guarantees (each held by construction, not by the estimate):
- Budget: every chunk's `ids` is `encode(chunk.text)` (same special-token policy) and has at most
  `max_tokens` tokens. When some stretch of text between two cut points needs more tokens than that on its
  own (an emoji of 3 tokens with `max_tokens=2`), no chunking exists: `InvalidBudgetError` says where.
- Coverage: `chunk.text == text[chunk.start:chunk.end]`; starts and ends strictly increase; the first chunk
  starts at 0, the last ends at len(text), each starts at or before the previous one's end. With
  `overlap=0` each starts exactly where the previous ended, so the texts concatenate to the input.
- Overlap `k` (0 <= k < max_tokens): the next chunk starts at the latest cut point that leaves at least `k`
  tokens of the whole text's encoding between it and the previous chunk's end (more when no cut point lies
  exactly there, e.g. inside a split character; less only when the previous chunk is itself shorter than
  k + 1 tokens). Overlaps start on token boundaries, never on separators.
- Cut choice: the furthest cut that the whole text's encoding puts within the budget, moved back to the last
  separator of kind `prefer` in the last half of the budget (SEPARATOR_WINDOW), else the next weaker kind
  (paragraph → sentence → whitespace), else that token boundary. Separators: see separators.py; a cut never
  falls inside a special token.

Cost (linear): one encode of the whole text (the cut grid), one encode per chunk (its own ids: together
~ one more encode of the text, times (1 + overlap/max_tokens)), a backward scan for separators over the last
part of each chunk. The chunk ends and the separators are planned natively, many chunks a call
(native/chunk_plan.c: the first attempt below, made for each chunk in turn), so a chunk costs its own
encode and its objects, ~1.5 us (100,000 one-token chunks were ~1 s of Python before). When a chunk's own
encoding overshoots the estimate (a cut inside a piece re-merges), the end moves back by the excess, at
most MAX_QUICK_RETRIES times, then a search (budget_search) settles it, in Python, and the plan restarts
after that chunk.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import AbstractSet, Literal

from ..errors import InvalidBudgetError, quoted
from ._chunk_plan import plan as plan_chunks
from .budget_search import last_fitting
from .offsets import Alignment, AlignmentRunner, align_tokens
from .separators import last_separator_cut
from .special_tokens import special_token_starts
from .truncation import check_max_tokens, own_encoder

__all__ = ["Chunk", "chunk", "iter_chunks", "least_chunks", "PREFERENCES"]

# prefer -> the separator kinds tried, strongest first (token boundaries always come last)
PREFERENCES: dict[str, tuple[str, ...]] = {
    "paragraph": ("paragraph", "sentence", "whitespace"),
    "sentence": ("sentence", "whitespace"),
    "whitespace": ("whitespace",),
    "token": (),
}
_new_object = object.__new__
SEPARATOR_WINDOW = 0.5  # separators count when they leave the chunk at least half of its budget
MAX_QUICK_RETRIES = 3
CHUNK_PLAN_BATCH = 1024  # chunks planned natively at most per call (8 KiB of plan; ~0.1-0.3 ms)
_HUGE = 1 << 40  # a budget, overlap or window this large reaches past any text's tokens (uint32)
_KIND_NUMBERS = {"paragraph": 0, "sentence": 1, "whitespace": 2}  # separator kind -> chunk_plan.c's number


@dataclass(frozen=True)
class Chunk:
    """One chunk: its text, its span `[start, end)` in the input (characters) and its own ids."""

    text: str
    start: int
    end: int
    ids: list[int]

    @property
    def token_count(self) -> int:
        return len(self.ids)

    @classmethod
    def _made(cls, text: str, start: int, end: int, ids: list[int]) -> Chunk:
        # The chunk loop's constructor: a frozen dataclass's __init__ sets each field through
        # object.__setattr__, ~2.4 us for four under load against ~0.8 us this way, which a call of 100,000
        # one-token chunks pays per chunk. Same object (fields, equality, immutability).
        chunk = _new_object(cls)
        fields = chunk.__dict__
        fields["text"], fields["start"], fields["end"], fields["ids"] = text, start, end, ids
        return chunk


def chunk(
    encoding,
    text: str,
    max_tokens: int,
    overlap: int = 0,
    prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
    *,
    allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
    max_chunks: int | None = None,
) -> list[Chunk]:
    """`text` cut into chunks of at most `max_tokens` tokens each (see the module docstring).

    `max_chunks` bounds the work and the result (a service sets it): `InvalidBudgetError` when the text
    has more than `max_chunks * (max_tokens - overlap) + overlap` tokens (checked before chunking: each chunk
    starts at most `max_tokens - overlap` tokens after the previous one) or chunking makes more than
    `max_chunks` chunks.
    """
    return list(
        iter_chunks(
            encoding,
            text,
            max_tokens,
            overlap,
            prefer,
            allowed_special=allowed_special,
            disallowed_special=disallowed_special,
            max_chunks=max_chunks,
        )
    )


def iter_chunks(
    encoding,
    text: str,
    max_tokens: int,
    overlap: int = 0,
    prefer: Literal["paragraph", "sentence", "whitespace", "token"] = "paragraph",
    *,
    allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
    max_chunks: int | None = None,
    ids: list[int] | None = None,
    run_alignment: AlignmentRunner | None = None,
) -> Iterator[Chunk]:
    """`chunk`, one chunk at a time (for streaming a big document out): arguments, special tokens and the
    whole text's token count are checked before this returns; each chunk is encoded when it is asked for.
    `ids`: `encode(text)` under the same special-token policy, when the caller has computed it (a service
    encodes a large text on a thread of its choosing); it is checked against the text where it is aligned.
    `run_alignment`: how the alignment's GIL-free walk is run (`offsets.align_tokens`)."""
    max_tokens = check_max_tokens(max_tokens, minimum=1)
    if max_chunks is not None and (isinstance(max_chunks, bool) or not isinstance(max_chunks, int) or max_chunks < 1):
        raise TypeError(f"max_chunks must be None or an int >= 1, got {max_chunks!r}")
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise TypeError(f"overlap must be an int, got {type(overlap).__name__}")
    if not 0 <= overlap < max_tokens:
        raise InvalidBudgetError(
            "overlap", f"overlap must be >= 0 and below max_tokens ({max_tokens}), got {overlap}"
        )
    if not isinstance(prefer, str) or prefer not in PREFERENCES:  # a list from JSON is not hashable
        raise InvalidBudgetError("prefer", f"prefer must be one of {', '.join(map(repr, PREFERENCES))}, got {quoted(prefer)}")
    grid = align_tokens(encoding, text, allowed_special=allowed_special, disallowed_special=disallowed_special, ids=ids,
                        run_alignment=run_alignment)
    if max_chunks is not None and least_chunks(len(grid.ids), max_tokens, overlap) > max_chunks:
        _too_many_chunks(max_chunks, max_tokens, overlap, len(grid.ids))
    protected = _special_spans(encoding, text, allowed_special)
    chunker = _Chunker(encoding, grid, max_tokens, overlap, PREFERENCES[prefer], allowed_special, protected)
    return chunker.chunks(max_chunks)


def least_chunks(tokens: int, max_tokens: int, overlap: int) -> int:
    """The chunks a text of `tokens` tokens needs at least: the first covers up to `max_tokens` of them, each
    next one starts at most `max_tokens - overlap` tokens after the previous start (an overlap of
    `max_tokens - 1` advances one token a chunk). Exact for `PREFER_TOKEN` cuts on token boundaries; a chunk
    that cannot keep its overlap (a character of several tokens in the way) starts at the previous end, so
    a few such texts need fewer.

    >>> least_chunks(100, 10, 0), least_chunks(100, 10, 9), least_chunks(0, 10, 9)
    (10, 91, 0)
    """
    if tokens <= max_tokens:
        return 1 if tokens else 0
    return 1 + -(-(tokens - max_tokens) // (max_tokens - overlap))


def _too_many_chunks(max_chunks: int, max_tokens: int, overlap: int, total: int):
    # Named "max_chunks" (not "max_tokens"): a service that passes its own bound tells this apart from a
    # budget that is too small for the text, and answers it as the limit it is.
    advance = f" advancing {max_tokens - overlap} a chunk (overlap={overlap})" if overlap else ""
    error = InvalidBudgetError(
        "max_chunks",
        f"the text ({total} tokens) makes more than max_chunks={max_chunks} chunks of max_tokens={max_tokens}"
        f"{advance}; raise max_tokens, lower the overlap or send less text",
    )
    error.least_chunks = max(least_chunks(total, max_tokens, overlap), max_chunks + 1)  # what a service reports
    raise error


class _OverlapTooLong(Exception):
    """No chunk from this overlapping start reaches past the previous chunk's end within the budget."""


class _Chunker:
    def __init__(self, encoding, grid: Alignment, max_tokens, overlap, kinds, allowed_special, protected):
        self.encoding = encoding
        self.text = grid.text
        self.cut_tokens = grid.cut_tokens  # tokens of the whole encoding before cut j
        self.cut_chars = grid.cut_chars  # character position of cut j
        self.max_tokens = max_tokens
        self.overlap = overlap
        self.kinds = kinds
        self.allowed_special = allowed_special
        self.protected = protected  # disjoint (start, end) spans of special-token text, sorted
        self.protected_buffer = array("I", [position for span in protected for position in span])
        self.kind_numbers = tuple(_KIND_NUMBERS[kind] for kind in kinds)
        self.own_encoding = own_encoder(encoding, allowed_special)  # text -> its own ids
        self.window_tokens = math.ceil(max_tokens * SEPARATOR_WINDOW)

    def chunks(self, max_chunks: int | None) -> Iterator[Chunk]:
        # The native plan is `chunk_end`'s first attempt and `next_start`, chunk after chunk: a planned chunk
        # whose own encoding fits is the chunk `chunk_end` makes; one that overshoots is searched from there in
        # Python, and the plan restarts after it. Batches grow while plans hold (a text whose every chunk
        # overshoots plans one chunk at a time, not a batch it throws away).
        text, made, batch = self.text, 0, 1
        own_encoding, max_tokens, made_chunk = self.own_encoding, self.max_tokens, Chunk._made
        start = previous_end = 0
        while start < len(text):
            planned = memoryview(self.plan(start, previous_end, batch)).cast("I")
            searched = False
            for index in range(0, len(planned), 2):
                if made == max_chunks:
                    _too_many_chunks(max_chunks, self.max_tokens, self.overlap, self.cut_tokens[-1])
                start, end = planned[index], planned[index + 1]
                part = text[start:end]
                ids = own_encoding(part)
                if len(ids) > max_tokens:
                    start, end, ids = self.searched_chunk(start, previous_end)
                    part = text[start:end]
                    searched = True
                yield made_chunk(part, start, end, ids)
                made += 1
                if end == len(text):
                    return
                previous_end = end
                if searched:
                    break
            start = self.next_start(start, end)
            batch = 1 if searched else min(2 * batch, CHUNK_PLAN_BATCH)

    def plan(self, start: int, previous_end: int, limit: int) -> bytes:
        """Up to `limit` chunks from `start` as `chunk_end`'s first attempts would make them (uint32 pairs
        start, end; native/chunk_plan.c)."""
        # Budgets past 2**40 plan as 2**40 does (token counts are uint32): the C side takes 64-bit integers, the
        # engine any int (the playground passes 10**30 on).
        return plan_chunks(
            self.text, self.cut_tokens, self.cut_chars, self.protected_buffer, self.kind_numbers,
            min(self.max_tokens, _HUGE + 1), min(self.overlap, _HUGE), min(self.window_tokens, _HUGE), start,
            previous_end, limit,
        )  # fmt: skip

    def searched_chunk(self, start: int, previous_end: int) -> tuple[int, int, list[int]]:
        """The chunk from `start` by the search (its first attempt overshot), or from `previous_end` when no
        chunk from the overlapping `start` gets past `previous_end`."""
        try:
            end, ids = self.chunk_end(start, previous_end)
        except _OverlapTooLong:
            start = previous_end
            end, ids = self.chunk_end(start, previous_end)
        return start, end, ids

    def encode(self, start: int, end: int) -> list[int]:
        return self.own_encoding(self.text[start:end])

    def chunk_end(self, start: int, previous_end: int) -> tuple[int, list[int]]:
        """The end of the chunk starting at `start` and its ids; the end lies past `previous_end`."""
        cut_tokens, cut_chars, text = self.cut_tokens, self.cut_chars, self.text
        base = cut_tokens[bisect_right(cut_chars, start) - 1]  # tokens of the whole encoding before `start`
        first = bisect_right(cut_chars, max(start, previous_end))  # the nearest end that makes progress
        end = cut_chars[max(first, bisect_right(cut_tokens, base + self.max_tokens) - 1)]
        low = max(cut_chars[bisect_right(cut_tokens, base + self.window_tokens - 1) - 1], start, previous_end)
        for attempt in range(1 + MAX_QUICK_RETRIES):
            if end < len(text):
                end = self.separator_cut(low, end)
            ids = self.encode(start, end)
            if len(ids) <= self.max_tokens:
                return end, ids
            if end <= cut_chars[first] or attempt == MAX_QUICK_RETRIES:
                break
            # Move back by the excess, in tokens of the whole encoding, but at least one cut point.
            before = bisect_right(cut_chars, end - 1) - 1  # last cut strictly before `end`
            target = cut_tokens[bisect_right(cut_chars, end) - 1] - (len(ids) - self.max_tokens)
            end = cut_chars[max(first, min(before, bisect_right(cut_tokens, target) - 1))]
        return self.settle(start, first, previous_end, end)

    def separator_cut(self, low: int, high: int) -> int:
        for kind in self.kinds:
            cut = last_separator_cut(self.text, kind, low, high)
            if cut is not None and not self.inside_special(cut):
                return cut
        return high

    def settle(self, start: int, first: int, previous_end: int, failed_end: int) -> tuple[int, list[int]]:
        """The last cut point before `failed_end` (which overshoots) whose chunk fits, by search."""
        cut_chars = self.cut_chars
        ends = list(dict.fromkeys(cut_chars[first : bisect_right(cut_chars, failed_end - 1)]))  # cuts before it
        fitting: dict[int, list[int]] = {}

        def fits(index: int) -> bool:
            ids = self.encode(start, ends[index])
            if len(ids) <= self.max_tokens:
                fitting[index] = ids
                return True
            return False

        if not ends:  # a separator inside the first stretch failed: that stretch, whole, is all there is
            ends = [cut_chars[first]]
            if ends[0] == failed_end or not fits(0):
                self.refuse(start, ends[0], previous_end)
            return ends[0], fitting[0]
        if not fits(0):
            self.refuse(start, ends[0], previous_end)
        ends.append(failed_end)
        best = last_fitting(fits, good=0, bad=len(ends) - 1, guess=len(ends) - 2)
        return ends[best], fitting[best]

    def refuse(self, start: int, end: int, previous_end: int):
        """No chunk from `start` makes progress: give up the overlap, or the budget is unmeetable."""
        if start < previous_end:
            raise _OverlapTooLong
        count = len(self.encode(start, end))
        raise InvalidBudgetError(
            "max_tokens",
            f"max_tokens={self.max_tokens} is too small for this text: characters {start}..{end} "
            f"({self.text[start:end][:40]!r}) have no cut point between them and take {count} tokens on their "
            f"own; use max_tokens >= {count}",
        )

    def next_start(self, start: int, end: int) -> int:
        if not self.overlap:
            return end
        cut_tokens, cut_chars = self.cut_tokens, self.cut_chars
        target = cut_tokens[bisect_right(cut_chars, end) - 1] - self.overlap
        # max(..., 0): a target before the text (a chunk shorter than the overlap) is cut 0, never cut -1
        # (the text's end, which min() below would turn into `end`, a separator that may split a token).
        candidate = cut_chars[max(bisect_right(cut_tokens, target) - 1, 0)]
        if candidate <= start:
            candidate = cut_chars[bisect_right(cut_chars, start)]
        return min(candidate, end)

    def inside_special(self, position: int) -> bool:
        index = bisect_right(self.protected, (position, math.inf)) - 1
        return index >= 0 and self.protected[index][0] < position < self.protected[index][1]


def _special_spans(encoding, text: str, allowed_special) -> list[tuple[int, int]]:
    """Spans of the text of every allowed special token (never cut inside), merged and sorted."""
    specials = encoding.special_tokens_set if allowed_special == "all" else set(allowed_special) & encoding.special_tokens_set
    if not specials:  # (most calls) the pattern that matches nothing still tries every offset: ~5 ms a MB, GIL held
        return []
    # One pass for all of them, overlapping occurrences included: a `find` pass a token cost o200k_harmony's
    # 1,091 tokens 0.24 s a MB of prose and 3.7 s a MB of "<|" (docs/decisions.md, "Special-token spans").
    spans = [(match.start(), match.end(1)) for match in special_token_starts(frozenset(specials)).finditer(text)]
    merged: list[tuple[int, int]] = []
    for span_start, span_end in sorted(spans):
        if merged and span_start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span_end))
        else:
            merged.append((span_start, span_end))
    return merged
