"""NFC that runs the full algorithm only where the text can change (Qwen's normalizer).

    >>> nfc("cafe\\u0301 au lait") == "caf\\u00e9 au lait"
    True
    >>> text = "plain text, déjà vu"
    >>> nfc(text) is text  # nothing to do: the same object back
    True

What NFC: Hugging Face `tokenizers`' (the reference for a tokenizer.json's normalizer), whose tables are
Unicode 9.0's. To it the 98 combining marks added since (Unicode 10-14: U+1DF6-1DFA, U+08CA-08D3,
U+1AC1-1ACE, ...) are characters of class 0 that compose with nothing, and U+11935 U+11930 does not compose
(U+11938 came in 13.0): "e\u1df8\u0323" stays as it is there, while Unicode 14's NFC puts U+0323 first and
composes ẹ. So a run is normalized in pieces split at those characters (`TOKENIZERS_STARTERS`), each piece
by `unicodedata` (identical elsewhere: tests/engine/test_nfc.py compares every code point, composition and
mark against `tokenizers`).

`unicodedata.normalize("NFC", text)` runs Unicode's quick check and, as soon as one character is not a
plain "yes" (a vowel sign that may compose with the letter before it, Bengali া or Malayalam ാ; a
combining accent), normalizes the whole text again: on the multilingual bench corpus, 15 of 135
documents (87 KB) took 1.85 ms that way and the other 120 (561 KB) 0.38 ms, so Qwen 3 spent ~10 % of
its multilingual encode in NFC.

NFC is local. It never changes text across the position before a starter (canonical combining class 0)
whose NFC_Quick_Check is Yes: nothing composes with what precedes such a character and no mark reorders
across it (UAX #15; ICU's `hasCompBoundaryBefore`). So `nfc` looks only at runs of the other characters
(marks, and characters whose quick check is No or Maybe), and hands to `unicodedata.normalize` each run
that may change, with the starter before it:
- a run holding a character whose quick check is No or Maybe (it may compose with what precedes it, or
  never occurs in NFC);
- a run of marks out of canonical order (a mark of a lower combining class after one of a higher);
- a run of marks after a starter that decomposes (é + a mark of a lower class goes inside é's decomposition).
Any other run is marks in canonical order after a starter that does not decompose, which NFC leaves as it is
(a mark whose quick check is Yes composes with nothing); so are the starters whose quick check is Yes between
the runs. A run made only of characters whose NFC is a fixed string that starts with such a starter (U+1D160,
a composition exclusion: U+1D158 U+1D165 U+1D16E) is replaced character by character (`str.translate`):
nothing composes or reorders across the starters that begin each replacement and follow the run. 1 MB of
U+1D160 took `unicodedata` 0.14 s, a Python step for each of its 262,144 runs once normalized (a starter and
two marks of one class) 0.09 s; now 0.016 s and none. The scan is native (`nfc_runs`,
service/native/nfc_runs.c); the classes come from the running interpreter's `unicodedata` (a table
built at the first call, ~0.1 s), so they follow its Unicode version. tests/engine/test_nfc.py holds
`nfc` to `tokenizers` on every code point in context and on generated text.

Bounds (issue 13): a run of 64 characters or more is put in canonical order here before `unicodedata` sees it
(`_unicodedata_nfc`: CPython's own ordering is quadratic, 88 s for a run of 320,000 marks out of order; now 0.11 s,
8 MB 1.3 s); a big text's runs look at the call's stop (`call_stop.stop_if_due`) every 4,096 runs. Not cut: the
scan (`nfc_runs`, ~0.5 s with the GIL for 8 MB of "e" + U+0301) and one long run (≤ ~1.3 s for 8 MB).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from itertools import islice

from ._native import nfc_runs
from .call_stop import stop_if_due

__all__ = ["nfc", "TOKENIZERS_STARTERS"]

# Code points that are marks (or, U+11930, the second half of a composition) in the running Unicode but
# that `tokenizers`' Unicode 9.0 tables do not know: starters there, composing with nothing. Python 3.11's
# unicodedata is Unicode 14.0; a later Python adds marks, which test_nfc.py's sweep against tokenizers finds.
TOKENIZERS_STARTERS = frozenset(
    code
    for first, last in (
        (0x07FD, 0x07FD), (0x0898, 0x089F), (0x08CA, 0x08D3), (0x09FE, 0x09FE), (0x0C3C, 0x0C3C), (0x0D3B, 0x0D3C),
        (0x0EBA, 0x0EBA), (0x1715, 0x1715), (0x1ABF, 0x1ACE), (0x1DF6, 0x1DFA), (0xA82C, 0xA82C), (0x10D24, 0x10D27),
        (0x10EAB, 0x10EAC), (0x10F46, 0x10F50), (0x10F82, 0x10F85), (0x11070, 0x11070), (0x1133B, 0x1133B),
        (0x1145E, 0x1145E), (0x11839, 0x1183A), (0x11930, 0x11930), (0x1193D, 0x1193E), (0x11943, 0x11943),
        (0x119E0, 0x119E0), (0x11A34, 0x11A34), (0x11A47, 0x11A47), (0x11A99, 0x11A99), (0x11D42, 0x11D42),
        (0x11D44, 0x11D45), (0x11D97, 0x11D97), (0x16FF0, 0x16FF1), (0x1E130, 0x1E136), (0x1E2AE, 0x1E2AE),
        (0x1E2EC, 0x1E2EF),
    )  # fmt: skip
    for code in range(first, last + 1)
)
_STARTER_CHARS = frozenset(map(chr, TOKENIZERS_STARTERS))
_AT_STARTERS = re.compile("([" + "".join(sorted(_STARTER_CHARS)) + "])")

# No code point from here on has a combining class or a canonical decomposition (test_nfc.py checks that
# against the running unicodedata): the table stops here, and nfc_runs reads what lies beyond as class 0.
_TABLE_END = 0x30000
_STARTER, _MARK, _MAYBE_OR_NO, _DECOMPOSING_STARTER, _REPLACED = 0, 1, 2, 3, 4  # classes, as native/nfc_runs.c reads them
# Runs normalized between two looks at the call's stop (call_stop.stop_if_due): ~3 ms of the shortest runs (8 MB
# of "e" + U+0301 is 2.6 M runs, 2.1 s in this loop), so NFC of a big text ends soon after its call's deadline.
_RUNS_BETWEEN_STOPS = 4096


def nfc(text: str) -> str:
    """`unicodedata.normalize("NFC", text)`; `text` itself when it is NFC already."""
    if text.isascii():
        return text
    runs = nfc_runs(text, _classes(), _quiet_below(), _combining())
    if not runs:
        return text
    parts = []
    last = 0
    pending = iter(runs)
    for first in range(0, len(runs), _RUNS_BETWEEN_STOPS):
        if first:  # a big text: a look at the call's stop every few milliseconds of runs (a small one never looks)
            stop_if_due()
        for start, end, replaced in islice(pending, _RUNS_BETWEEN_STOPS):
            segment = text[start:end]
            normalized = segment.translate(_replacements()) if replaced else _normalize_run(segment)
            if normalized != segment:
                parts += (text[last:start], normalized)
                last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


def _normalize_run(segment: str) -> str:
    """NFC of one run as `tokenizers` gives it: pieces between TOKENIZERS_STARTERS normalized apart."""
    # (most runs are a character or two: unicodedata directly, without _unicodedata_nfc's call)
    normalized = unicodedata.normalize("NFC", segment) if len(segment) < _ORDER_FIRST_CHARS else _unicodedata_nfc(segment)
    if normalized == segment or _STARTER_CHARS.isdisjoint(segment):
        return normalized  # unchanged, or nothing Unicode 9.0 reads otherwise
    pieces = _AT_STARTERS.split(segment)  # text, starter, text, ...: the starters at the odd indices, kept
    return "".join(piece if index % 2 else _unicodedata_nfc(piece) for index, piece in enumerate(pieces))


def _unicodedata_nfc(text: str) -> str:
    """`unicodedata.normalize("NFC", text)`, in O(n log n) on a long run of marks.

    CPython puts the marks of its decomposition in canonical order by insertion sort (unicodedata.c, nfd_nfkd):
    quadratic in a run of marks out of order, in C with the GIL held and no way to stop it. "e" followed by
    alternating U+0301 U+0316 (classes 230, 220) took 0.41 s for 20,000 marks, 5.5 s for 80,000, 88 s for
    320,000 (640 KB; 8 MB would take hours). So a text of _ORDER_FIRST_CHARS characters or more is decomposed
    (`str.translate`: each character's own NFD) and each run of marks stably sorted by class here: that is its
    NFD, which unicodedata's NFC then decomposes and orders in one pass (nothing left to move) before composing,
    as it does any text. Shorter texts go to unicodedata directly (a run that short is microseconds either way)."""
    if len(text) >= _ORDER_FIRST_CHARS:
        text = _mark_runs().sub(_in_canonical_order, text.translate(_decompositions()))
    return unicodedata.normalize("NFC", text)


def _in_canonical_order(marks: re.Match[str]) -> str:
    return "".join(sorted(marks.group(), key=unicodedata.combining))  # sorted() is stable: equal classes keep order


# (see _unicodedata_nfc) below this many characters, unicodedata's reordering is left to it
_ORDER_FIRST_CHARS = 64


@functools.cache
def _decompositions() -> dict[int, str]:
    """code point -> its NFD, for every code point NFD changes (below _TABLE_END: none after; Hangul included)."""
    table = {}
    for code in range(_TABLE_END):
        decomposed = unicodedata.normalize("NFD", chr(code))
        if decomposed != chr(code):
            table[code] = decomposed
    return table


@functools.cache
def _mark_runs() -> re.Pattern[str]:
    """Two or more code points in a row whose canonical combining class is not 0 (none past _TABLE_END)."""
    ranges, start = [], None
    for code in range(_TABLE_END + 1):
        mark = code < _TABLE_END and unicodedata.combining(chr(code)) != 0
        if mark and start is None:
            start = code
        elif not mark and start is not None:
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(code - 1)) if code - 1 > start else ""))
            start = None
    return re.compile("[" + "".join(ranges) + "]{2,}")


@functools.cache
def _quiet_below() -> int:
    """The first code point of class _MARK, _MAYBE_OR_NO or _REPLACED (U+0300 today): nfc_runs passes those before it
    with one compare each, so Latin-1 text (curly quotes included: U+2019 is past it but a plain starter)
    costs a compare a character, not a table read."""
    table = _classes()
    firsts = [table.find(bytes([cls])) for cls in (_MARK, _MAYBE_OR_NO, _REPLACED)]
    return min((first for first in firsts if first >= 0), default=len(table))


@functools.cache
def _classes() -> bytes:
    """A byte per code point below _TABLE_END: its class (see the constants above)."""
    table = bytearray(_TABLE_END)
    maybe_or_no = []
    for code in range(_TABLE_END):
        char = chr(code)
        if unicodedata.combining(char):
            table[code] = _MARK
        decomposition = unicodedata.decomposition(char)
        if not decomposition or decomposition.startswith("<"):
            continue  # no canonical decomposition
        if table[code] == _STARTER:
            table[code] = _DECOMPOSING_STARTER
        if table[code] == _MARK or unicodedata.normalize("NFC", char) != char:
            maybe_or_no.append(code)  # quick check No (never in NFC), or a mark that decomposes: normalized
        parts = [int(part, 16) for part in decomposition.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(parts[0]) + chr(parts[1])) == char:
            maybe_or_no.append(parts[1])  # the second part of a composition: quick check Maybe
    # Hangul composes by arithmetic, not through decompositions listed in the database: a vowel jamo after
    # a leading consonant, a trailing consonant after an LV syllable
    maybe_or_no += [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]
    for code in range(0xAC00, 0xD7A4):
        table[code] = _DECOMPOSING_STARTER
    for code in maybe_or_no:
        table[code] = _MAYBE_OR_NO
    for code in _replacements():
        table[code] = _REPLACED
    return bytes(table)


@functools.cache
def _combining() -> bytes:
    """A byte per code point below _TABLE_END: its canonical combining class (nfc_runs: marks in order)."""
    return bytes(unicodedata.combining(chr(code)) for code in range(_TABLE_END))


@functools.cache
def _replacements() -> dict[int, str]:
    """code point -> its NFC, for the class _REPLACED: a starter of quick check No (NFC changes it wherever it
    is) whose NFC begins with a starter that has no decomposition and composes with nothing before it (not the
    second part of any composition), so that the text before it and after a run of them (a starter of quick
    check Yes) never interacts with it. None of those characters is one `tokenizers` reads otherwise
    (TOKENIZERS_STARTERS). 1,000-odd today: the CJK compatibility ideographs, U+1D15E-1D164, ..."""
    second_parts = set()
    candidates = {}
    for code in range(_TABLE_END):
        char = chr(code)
        decomposition = unicodedata.decomposition(char)
        if not decomposition or decomposition.startswith("<"):
            continue
        parts = [int(part, 16) for part in decomposition.split()]
        if len(parts) == 2:
            second_parts.add(parts[1])  # may compose with what precedes it, as a composition's second part
        normalized = unicodedata.normalize("NFC", char)
        if normalized != char and not unicodedata.combining(char):
            candidates[code] = normalized
    second_parts.update(range(0x1161, 0x1176), range(0x11A8, 0x11C3))  # Hangul's, by arithmetic
    return {
        code: normalized
        for code, normalized in candidates.items()
        if not unicodedata.combining(normalized[0]) and unicodedata.decomposition(normalized[0]) == ""
        and ord(normalized[0]) not in second_parts
        and code not in TOKENIZERS_STARTERS and TOKENIZERS_STARTERS.isdisjoint(map(ord, normalized))
    }
