"""The size a split pattern may have before anything compiles it: its length and how deeply it nests.

A pattern is data from a model file or a manifest. Compiling one costs time that grows with its length
(the compiler computes first and follow sets: 20,000 alternatives take 2 s, 200,000 take 46 s), and both the
compiler and the `regex` module's parser recurse once per level of nesting (400 nested groups: a
RecursionError). The largest pattern of any family tokend imports is under 1,000 characters and nests 3
deep, so the bounds are far from every real one. They are checked before parsing, and a pattern past them
is refused outright, not handed to the `regex` fallback.

>>> check_pattern_bounds(r"'s|\\p{L}+|\\s+")
>>> check_pattern_bounds("(" * 100 + "a" + ")" * 100)
Traceback (most recent call last):
  ...
tokend.engine.splitting.pattern_bounds.PatternTooComplex: split pattern '((((((((((((((((((((((((((((((...': groups nest 100 deep (at most 64)
"""

from __future__ import annotations

from tokend.errors import ModelFormatError

__all__ = ["MAX_PATTERN_CHARS", "MAX_PATTERN_DEPTH", "PatternTooComplex", "check_pattern_bounds"]

MAX_PATTERN_CHARS = 16_384
MAX_PATTERN_DEPTH = 64


class PatternTooComplex(ModelFormatError):
    """A split pattern past `MAX_PATTERN_CHARS` or `MAX_PATTERN_DEPTH` (no engine is tried on it)."""


def check_pattern_bounds(pattern: str) -> None:
    """Raise PatternTooComplex when `pattern` is too long or nests too deeply. Depth counts unescaped groups
    and classes (a class inside a class nests in the `regex` module's V1 syntax); a parenthesis inside a
    class is a literal.

    >>> check_pattern_bounds("[(]" * 100 + "|" + "[[a]]")
    """
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternTooComplex(f"split pattern {_head(pattern)}: {len(pattern):,} characters (at most {MAX_PATTERN_CHARS:,})")
    depth = deepest = classes = 0
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            classes += 1
            depth += 1
            deepest = max(deepest, depth)
        elif char == "]" and classes:
            classes -= 1
            depth -= 1
        elif classes:
            continue  # inside a class "(" and ")" are characters
        elif char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
    if deepest > MAX_PATTERN_DEPTH:
        raise PatternTooComplex(f"split pattern {_head(pattern)}: groups nest {deepest} deep (at most {MAX_PATTERN_DEPTH})")


def _head(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 30 else pattern[:30] + "...")
