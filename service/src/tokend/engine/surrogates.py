"""`fix_surrogates`: tiktoken's repair of text that is not a sequence of Unicode scalar values.

>>> fix_surrogates("a\\ud83d\\ude00b"), fix_surrogates("a\\ud800b")
('a😀b', 'a�b')

A pair of surrogates becomes the character it encodes and a lone one U+FFFD, so such text encodes (as in
tiktoken) and does not round-trip. Every family calls it only after UTF-8 encoding failed, so valid text
pays nothing.
"""

from __future__ import annotations

__all__ = ["fix_surrogates"]


def fix_surrogates(text: str) -> str:
    """`text` with surrogate pairs joined and lone surrogates replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
