"""Split patterns outside the native compiler's subset (tokend.engine.splitting refuses them, naming the
construct: lookbehind, backreferences, ...), run by the `regex` module: the fallback of the pre-tokenizer
(pre_tokenizer.compile_step_splitter), with the same two methods as the native `Splitter`.

Two ways to cut text with one pattern:
- `findall`: only the matches are pieces, text between them is dropped (tiktoken; no OpenAI pattern leaves
  any gap). Whole matches, also for a pattern with groups (where `regex.findall` would give the groups).
- `split_isolated`: matches and the text between them are pieces, in order (Hugging Face's
  `Split(behavior="Isolated")`, llama.cpp's regex splitting).

>>> splitter = compile_regex_splitter(r"\\p{N}{1,3}", dialect="oniguruma")
>>> splitter.findall("ab12345c")
['123', '45']
>>> splitter.split_isolated("ab12345c")
['ab', '123', '45', 'c']

Known difference: Hugging Face runs tokenizer.json patterns with Oniguruma, whose `$` also matches before
every newline (the `regex` module's only before a final one) and whose Unicode tables are older; none of
the patterns of the families tokend imports uses `$` where it matters, and the tests hold every imported
model to its reference library on text of many scripts. `dialect` records which engine a pattern was
written for (the native compiler implements both; this fallback only the `regex` module's reading).
"""

from __future__ import annotations

import regex

from ..errors import ModelFormatError
from .splitting.nodes import Dialect

__all__ = ["RegexSplitter", "compile_regex_splitter"]


class RegexSplitter:
    """One compiled split pattern (immutable; safe to share between threads)."""

    def __init__(self, pattern: str, dialect: Dialect) -> None:
        self.pattern = pattern
        self.dialect = dialect
        self._compiled = regex.compile(pattern)
        self.findall = self._compiled.findall if self._compiled.groups == 0 else self._whole_matches
        self.split_isolated = self._split_isolated_slow
        if self._compiled.groups == 0:
            # One C call: splitting on the whole pattern as one capturing group yields gaps and matches in
            # turn (2-3x faster than finditer). A pattern with groups of its own (or global flags, which
            # cannot move inside a group) keeps the loop.
            try:
                splitter = regex.compile(f"({pattern})").split
            except regex.error:
                pass
            else:
                self.split_isolated = lambda text: [piece for piece in splitter(text) if piece]

    def _whole_matches(self, text: str) -> list[str]:
        return [match.group() for match in self._compiled.finditer(text)]

    def _split_isolated_slow(self, text: str) -> list[str]:
        pieces: list[str] = []
        end = 0
        for match in self._compiled.finditer(text):
            start = match.start()
            if start > end:
                pieces.append(text[end:start])
            if match.end() > start:
                pieces.append(match.group())
            end = match.end()
        if end < len(text):
            pieces.append(text[end:])
        return pieces

    def __repr__(self) -> str:
        return f"RegexSplitter({self.pattern!r}, dialect={self.dialect!r})"


def compile_regex_splitter(pattern: str, *, dialect: Dialect = "python-regex") -> RegexSplitter:
    """Compile `pattern`; a pattern that does not compile raises ModelFormatError naming it."""
    try:
        return RegexSplitter(pattern, dialect)
    except regex.error as error:
        raise ModelFormatError(f"split pattern {pattern[:200]!r} does not compile: {error}") from None
