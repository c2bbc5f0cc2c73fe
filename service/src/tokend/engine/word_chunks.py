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

from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN

__all__ = ["split_words", "CHUNKABLE_PATTERNS"]

CHUNKABLE_PATTERNS = frozenset({GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN})

split_words = re.compile(r"(?<=\S) ").split
