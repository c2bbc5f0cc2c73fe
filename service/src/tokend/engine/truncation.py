"""Truncation: the longest prefix (or suffix) of a text whose own encoding fits a token budget.

>>> from tokend import get_encoding
>>> enc = get_encoding("cl100k_base")
>>> result = truncate(enc, "The quick brown fox jumps", 3)
>>> result.text, (result.start, result.end), result.total_tokens, result.truncated
('The quick brown', (0, 15), 5, True)
>>> truncate(enc, "The quick brown fox jumps", 3, side="left").text
' brown fox jumps'
>>> enc.encode("Dec  1") == enc.encode("Dec") + enc.encode(" ") * 2 + enc.encode("1")  # 4 tokens
True
>>> result = truncate(enc, "Dec  1", 2)        # the first 2 tokens spell "Dec ", but "Dec  " is 2 on its own
>>> result.text, result.ids == enc.encode("Dec  ")
('Dec  ', True)

Definitions, for `side="right"` (keep a prefix; "left" keeps a suffix, mirrored):
- Cut points: the character positions where a token of the *whole* text's encoding ends on a character
  boundary (a token holding part of a character is never cut after), plus 0 and len(text). Special tokens are
  single tokens, so a cut never falls inside one.
- Own encoding: `encode(text[:cut])` with the same special-token policy. It can differ from the first
  tokens of the whole text's encoding near the cut (BPE is not prefix-stable: above, "Dec  1" is
  "Dec", " ", " ", "1", while "Dec  " alone is "Dec", "  "; a cut inside a piece re-merges its bytes, the
  split pattern sees a different end of text), so the budget is held on the own encoding: `result.ids` IS
  `encode(result.text)` and `len(result.ids) <= max_tokens`.
- Maximal: the cut point right after the result (the next token's text) has an own encoding of more than
  `max_tokens` tokens; when the whole text fits, the result is the whole text.
- `total_tokens`: the token count of the whole text (what was there before truncating).
Errors: an `InvalidBudgetError` (a ValueError) names the argument; special tokens raise as `encode` does.

Cost: one encode of the whole text (its cut grid, see offsets) plus about two encodes of the kept part
(budget_search: the grid's guess is checked and the next cut shown not to fit). When the whole text fits,
just the one encode.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import AbstractSet, Literal

from ..errors import InvalidBudgetError, quoted
from .budget_search import last_fitting
from .offsets import AlignmentRunner, align_tokens

__all__ = ["Truncation", "truncate", "check_max_tokens", "own_encoding", "own_encoder"]

SIDES = ("right", "left")


@dataclass(frozen=True)
class Truncation:
    """The kept text, its own ids, its span `[start, end)` in the input and the input's token count."""

    text: str
    ids: list[int]
    start: int
    end: int
    total_tokens: int

    @property
    def truncated(self) -> bool:
        """True when something was cut off (the kept text fits, the whole did not)."""
        return len(self.ids) < self.total_tokens


def check_max_tokens(max_tokens: object, *, minimum: int) -> int:
    """`max_tokens` as an int >= minimum, or an error naming it."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise TypeError(f"max_tokens must be an int, got {type(max_tokens).__name__}")
    if max_tokens < minimum:
        raise InvalidBudgetError("max_tokens", f"max_tokens must be >= {minimum}, got {max_tokens}")
    return max_tokens


def own_encoding(encoding, text: str, allowed_special) -> list[int]:
    """`encode(text)` for a part of a text already checked for disallowed special tokens (a part holds
    nothing its whole does not), skipping the check; without allowed specials, the ordinary path."""
    return own_encoder(encoding, allowed_special)(text)


def own_encoder(encoding, allowed_special) -> Callable[[str], list[int]]:
    """`own_encoding` bound to one encoding and policy, for a loop that encodes many parts (a call less each).

        >>> import tokend
        >>> own_encoder(tokend.get_encoding("cl100k_base"), frozenset())("hello world")
        [15339, 1917]
    """
    if not allowed_special:
        return encoding.encode_ordinary
    return partial(encoding.encode, allowed_special=allowed_special, disallowed_special=())


def truncate(
    encoding,
    text: str,
    max_tokens: int,
    side: Literal["right", "left"] = "right",
    *,
    allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
    disallowed_special: Literal["all"] | Collection[str] = "all",
    ids: list[int] | None = None,
    run_alignment: AlignmentRunner | None = None,
) -> Truncation:
    """The longest prefix (`side="right"`) or suffix (`"left"`) of `text` that fits `max_tokens` (see above).

    `ids`: `encode(text)` under the same special-token policy, when the caller has computed it (a service
    encodes a large text on a thread of its choosing); taken as given (it is aligned with the text, and so
    checked, only when the text does not fit); `run_alignment`: how the alignment's GIL-free walk is run
    (`offsets.align_tokens`).
    """
    max_tokens = check_max_tokens(max_tokens, minimum=0)
    if not isinstance(side, str) or side not in SIDES:
        raise InvalidBudgetError("side", f"side must be 'right' (keep the beginning) or 'left' (keep the end), got {quoted(side)}")
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    whole = ids if ids is not None else encoding.encode(
        text, allowed_special=allowed_special, disallowed_special=disallowed_special
    )
    if len(whole) <= max_tokens:
        return Truncation(text, whole, 0, len(text), len(whole))
    grid = align_tokens(encoding, text, allowed_special=allowed_special, ids=whole, run_alignment=run_alignment)
    own: dict[int, list[int]] = {}  # character position -> ids of the kept text, for positions that fit

    def kept(position: int) -> str:
        return text[:position] if side == "right" else text[position:]

    def fits_at(position: int) -> bool:
        ids = own_encoding(encoding, kept(position), allowed_special)
        if len(ids) <= max_tokens:
            own[position] = ids
            return True
        return False

    cut_tokens, cut_chars = grid.cut_tokens, grid.cut_chars
    last = len(cut_chars) - 1
    if side == "right":
        # index j keeps text[:cut_chars[j]]: j = 0 keeps nothing (fits), j = last keeps everything (does not)
        guess = bisect_right(cut_tokens, max_tokens) - 1
        best = last_fitting(lambda j: fits_at(cut_chars[j]), good=0, bad=last, guess=guess)
        position = cut_chars[best]
    else:
        # index k keeps text[cut_chars[last - k]:]: k = 0 keeps nothing, k = last keeps everything
        guess = last - bisect_left(cut_tokens, len(whole) - max_tokens)
        best = last_fitting(lambda k: fits_at(cut_chars[last - k]), good=0, bad=last, guess=guess)
        position = cut_chars[last - best]
    ids = own.get(position)
    if ids is None:  # only the empty text, which fits without being encoded
        ids = own_encoding(encoding, kept(position), allowed_special)
    start, end = (0, position) if side == "right" else (position, len(text))
    return Truncation(text[start:end], ids, start, end, len(whole))
