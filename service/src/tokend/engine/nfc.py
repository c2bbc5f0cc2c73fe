"""NFC that runs the full algorithm only where the text can change (Qwen's normalizer).

    >>> nfc("cafe\\u0301 au lait") == "caf\\u00e9 au lait"
    True
    >>> text = "plain text, déjà vu"
    >>> nfc(text) is text  # nothing to do: the same object back
    True

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
- a run of two or more marks (their order may be wrong);
- one mark after a starter that decomposes (é + a mark of a lower class goes inside é's decomposition).
Any other run is one mark after a starter that does not decompose, which NFC leaves as it is; so are the
starters whose quick check is Yes between the runs. The scan is native (`nfc_runs`,
service/native/nfc_runs.c); the classes come from the running interpreter's `unicodedata` (a table
built at the first call, ~0.1 s), so they follow its Unicode version. tests/engine/test_nfc.py holds
`nfc` to `unicodedata.normalize` on every code point in context and on generated text.
"""

from __future__ import annotations

import functools
import unicodedata

from ._native import nfc_runs

__all__ = ["nfc"]

# No code point from here on has a combining class or a canonical decomposition (test_nfc.py checks that
# against the running unicodedata): the table stops here, and nfc_runs reads what lies beyond as class 0.
_TABLE_END = 0x30000
_STARTER, _MARK, _MAYBE_OR_NO, _DECOMPOSING_STARTER = 0, 1, 2, 3  # classes, as native/nfc_runs.c reads them


def nfc(text: str) -> str:
    """`unicodedata.normalize("NFC", text)`; `text` itself when it is NFC already."""
    if text.isascii():
        return text
    runs = nfc_runs(text, _classes(), _quiet_below())
    if not runs:
        return text
    parts = []
    last = 0
    for start, end in runs:
        segment = text[start:end]
        normalized = unicodedata.normalize("NFC", segment)
        if normalized != segment:
            parts += (text[last:start], normalized)
            last = end
    if not parts:
        return text
    parts.append(text[last:])
    return "".join(parts)


@functools.cache
def _quiet_below() -> int:
    """The first code point of class _MARK or _MAYBE_OR_NO (U+0300 today): nfc_runs passes those before it
    with one compare each, so Latin-1 text (curly quotes included: U+2019 is past it but a plain starter)
    costs a compare a character, not a table read."""
    table = _classes()
    firsts = [table.find(bytes([cls])) for cls in (_MARK, _MAYBE_OR_NO)]
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
    return bytes(table)
