"""Where chunking likes to cut: after a blank line, after a sentence, before a word.

>>> last_separator_cut("One. Two.\\n\\nThree four", "paragraph", 0, 20)
11
>>> last_separator_cut("One. Two.\\n\\nThree four", "sentence", 0, 8)
4
>>> last_separator_cut("One. Two.\\n\\nThree four", "whitespace", 0, 20)
16

Each separator gives a cut position; the text on either side keeps its characters (nothing is dropped),
and the cut sits where byte-level BPE has a token boundary anyway, so the chunk's own encoding keeps the
tokens of the whole text:
- "paragraph": after a blank line (a line break, optional spaces/tabs, a line break; CRLF included), i.e.
  at the start of the next paragraph's first line.
- "sentence": after sentence-final punctuation (`.!?…` and closing quotes/brackets) that whitespace
  follows — the cut goes before that whitespace, since BPE attaches a leading space to the next word — or
  after CJK full stops (`。！？`), or after a single line break (lists, code, verse).
- "whitespace": before the last whitespace character ahead of a word (`"a   b"` → `"a  "` | `" b"`).
Not handled: abbreviations ("e.g. this") count as sentence ends; scripts without spaces between words
(Chinese, Japanese, Thai) have no "whitespace" cuts and fall back to token boundaries.
"""

from __future__ import annotations

from functools import cache
from typing import Any

__all__ = ["SEPARATORS", "last_separator_cut"]

# name -> (reverse-searching pattern, whether the cut is at the match's start (True) or end (False)).
# Reverse search needs the `regex` module; it is compiled at the first chunking call, so that importing
# the engine (every `import tokend`) does not import `regex`.
SEPARATORS: dict[str, tuple[str, bool]] = {
    "paragraph": (r"(?r)\n[^\S\n]*\n", False),
    "sentence": (r"(?r)[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s)|[\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]\u300d\u300f]*|\n", False),
    "whitespace": (r"(?r)\s(?=\S)", True),
}


@cache
def _compiled(kind: str) -> Any:  # a regex.Pattern
    import regex

    return regex.compile(SEPARATORS[kind][0])


def last_separator_cut(text: str, kind: str, low: int, high: int) -> int | None:
    """The last cut of `kind` with `low < cut <= high`, or None. Two characters past `high` count as context
    (a chunk may end right before the space of `" next"`: the space and the letter after it decide)."""
    pattern, at_start = _compiled(kind), SEPARATORS[kind][1]
    end = min(len(text), high + 2)
    while True:
        match = pattern.search(text, low, end)  # reverse patterns: the last match first
        if match is None:
            return None
        cut = match.start() if at_start else match.end()
        if cut <= high:
            return cut if cut > low else None
        end = match.end() - 1  # it ends past `high`: look before it
