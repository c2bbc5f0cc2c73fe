"""Pre-tokenizers: how text is cut into pieces before BPE, as a sequence of steps applied to every piece.

    Split(pattern)                   matches and the text between them become pieces (Hugging Face
                                     Split(behavior="Isolated"), llama.cpp's regex lists)
    Split(pattern, keep_gaps=False)  only the matches (tiktoken)
    PrefixSpace()                    a space before every piece that does not start with one (Hugging
                                     Face ByteLevel(add_prefix_space=True))

Hugging Face's ByteLevel(use_regex=True) is `(PrefixSpace(),)` when it adds the space, then
`Split(GPT2_BYTE_LEVEL_PATTERN)` (patterns.py); ByteLevel(use_regex=False) cuts nothing (its byte mapping
is what every byte-level vocabulary assumes anyway). A Sequence of pre-tokenizers is the concatenation of
their steps.

>>> pre_tokenize = compile_pre_tokenizer((Split(r"\\p{N}{1,3}"), Split(r"\\s+|\\S+")), dialect="oniguruma")
>>> pre_tokenize("ab 12345")
['ab', ' ', '123', '45']

Each Split here runs on the native splitter (tokend.engine.splitting) when the compiler accepts its pattern,
else on the `regex` module (regex_splitter). `Encoding` hands a whole chain of Splits to the native core
instead and uses this function only for what the core cannot take (see `encoding._native_split`).

Not handled here: normalizers and added tokens (see `Encoding`), the byte mapping (vocabularies are read
into bytes when loaded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ModelFormatError
from .splitting import Splitter, compile_splitter
from .splitting.nodes import Dialect
from .splitting.pattern_bounds import PatternTooComplex

if TYPE_CHECKING:
    from .regex_splitter import RegexSplitter

__all__ = ["Split", "PrefixSpace", "PreTokenizerStep", "compile_pre_tokenizer", "compile_step_splitter"]


@dataclass(frozen=True)
class Split:
    """Cut every piece at the matches of `pattern` (keeping the text between them unless `keep_gaps=False`)."""

    pattern: str
    keep_gaps: bool = True


@dataclass(frozen=True)
class PrefixSpace:
    """Prepend a space to every piece that does not start with one."""


PreTokenizerStep = Split | PrefixSpace


def compile_pre_tokenizer(steps: Sequence[PreTokenizerStep], *, dialect: Dialect) -> Callable[[str], list[str]]:
    """A function text -> pieces applying `steps` in order; empty pieces never come out."""
    functions: list[Callable[[str], list[str]]] = []
    for step in steps:
        if isinstance(step, Split):
            splitter = compile_step_splitter(step.pattern, dialect=dialect)
            functions.append(splitter.split_isolated if step.keep_gaps else splitter.findall)
        elif isinstance(step, PrefixSpace):
            functions.append(_prefix_space)
        else:
            raise TypeError(f"unknown pre-tokenizer step {step!r}")
    if not functions:
        return lambda text: [text] if text else []
    if len(functions) == 1:
        only = functions[0]
        return lambda text: only(text) if text else []

    def pre_tokenize(text: str) -> list[str]:
        pieces = [text] if text else []
        for function in functions:
            pieces = [piece for whole in pieces for piece in function(whole)]
        return pieces

    return pre_tokenize


def compile_step_splitter(pattern: str, *, dialect: Dialect) -> Splitter | RegexSplitter:
    """The native splitter of `pattern`, or the `regex` module's for a pattern outside the compiler's subset
    (ModelFormatError when neither compiles it)."""
    try:
        return compile_splitter(pattern, dialect=dialect)
    except PatternTooComplex:
        raise
    except ModelFormatError:
        from .regex_splitter import compile_regex_splitter  # `regex`: imported only for such a pattern

        return compile_regex_splitter(pattern, dialect=dialect)


def _prefix_space(piece: str) -> list[str]:
    return [piece if piece.startswith(" ") else " " + piece]
