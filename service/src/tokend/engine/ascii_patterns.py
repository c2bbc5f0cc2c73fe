"""ASCII-only equivalents of the built-in split patterns, for the standard `re` module.

On text that is pure ASCII (`str.isascii()`, O(1) in CPython), `\\p{L}` is `[A-Za-z]`, `\\p{Lu}` is `[A-Z]`,
`\\p{Ll}` is `[a-z]`, `\\p{N}` is `[0-9]`, `\\p{Lt}`/`\\p{Lm}`/`\\p{Lo}`/`\\p{M}` are empty, and `\\s` (Unicode
White_Space) is `[\\t\\n\\x0b\\x0c\\r ]` — so these patterns split ASCII text exactly like the originals, and
`re` runs them 2-3x faster than `regex` runs the Unicode originals (measured on English and Python code).
`$` differs between the engines only before a final newline, which `[...]++$` can never stop at (the
possessive run would have consumed that newline). The conformance tests compare the results with tiktoken.

>>> import re
>>> re.findall(ASCII_EQUIVALENTS[GPT4_PATTERN], "Hello world's 12345!!")
['Hello', ' world', "'s", ' ', '123', '45', '!!']

Rejected: a Unicode equivalent for `re`, with `\\p{L}`, `\\p{N}` and `\\s` spelled out as character classes
enumerated from the `regex` module itself (694 / 148 / 10 ranges): 3.7x *slower* than `regex` on the
multilingual corpus (`re` scans range lists linearly once a class has characters beyond the BMP).
Also measured on the `regex` side: `(?V1)` is 37% slower, and dropping the possessive quantifiers changes
the split (they are not only a speed-up).

Not handled: non-ASCII text (the Encoding uses the original pattern) and patterns other than the three
built-in ones.
"""

from __future__ import annotations

from .patterns import GPT2_PATTERN, GPT4_PATTERN, O200K_PATTERN

__all__ = ["ASCII_EQUIVALENTS"]

_S = r"\t\n\x0b\x0c\r "  # White_Space within ASCII (not \x1c-\x1f, which Python's \s would include)


def _ascii(pattern: str) -> str:
    return pattern.replace("WS", _S)


ASCII_EQUIVALENTS: dict[str, str] = {
    GPT2_PATTERN: _ascii(
        r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]++| ?[0-9]++| ?[^WSA-Za-z0-9]++|[WS]++$|[WS]+(?![^WS])|[WS]"""
    ),
    GPT4_PATTERN: _ascii(
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]{1,3}+| ?[^WSA-Za-z0-9]++[\r\n]*+|[WS]++$|"""
        r"""[WS]*[\r\n]|[WS]+(?![^WS])|[WS]"""
    ),
    O200K_PATTERN: _ascii(
        "|".join(
            [
                r"""[^\r\nA-Za-z0-9]?[A-Z]*[a-z]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\nA-Za-z0-9]?[A-Z]+[a-z]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[0-9]{1,3}""",
                r""" ?[^WSA-Za-z0-9]+[\r\n/]*""",
                r"""[WS]*[\r\n]+""",
                r"""[WS]+(?![^WS])""",
                r"""[WS]+""",
            ]
        )
    ),
}
