"""`Splitter` (one compiled split pattern) and `SplitterChain` (Hugging Face's Sequence of Splits).

>>> splitter = compile_splitter(r"\\p{N}{1,3}|\\p{L}+")
>>> splitter.findall("abc 12345!")              # regex.finditer's matches; unmatched text is skipped
['abc', '123', '45']
>>> splitter.split_isolated("abc 12345!")       # HF Split(behavior="Isolated"): matches and the gaps
['abc', ' ', '123', '45', '!']
>>> chain = SplitterChain([compile_splitter(r"\\p{N}{1,3}", dialect="oniguruma"),
...                        compile_splitter(r" ?\\p{L}+", dialect="oniguruma")])
>>> chain.split("ab 12340 cd")                   # every stage splits every piece of the one before
['ab', ' ', '123', '40', ' cd']

Both run in the native core: the hand-written scanners (pretokenize.c) for the patterns they implement,
the general matcher (split_program.c) for everything else the compiler accepts. `Encoding(splitter=...)`
takes either; a `Splitter` there means findall (tiktoken's semantics), a chain means its own mode.

Not handled: patterns outside the supported subset (see syntax) raise ModelFormatError naming the construct;
the `regex` module remains the way to run those. `findall` returns whole matches, also when the pattern
has capturing groups (where `regex.findall` would return the groups).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ...errors import ModelFormatError
from .. import _native
from ..patterns import BUILTIN_SCANNERS

if TYPE_CHECKING:
    from .nodes import Dialect

# The compiler (syntax, nodes, compiler) is imported on first use: a pattern a scanner runs never needs it,
# and importing it costs ~20 ms of every process's start.
DIALECTS = ("python-regex", "oniguruma")

__all__ = ["Splitter", "SplitterChain", "compile_splitter", "SplitMode"]

SplitMode = Literal["findall", "isolated"]
MAX_STAGES = _native.SPLIT_MAX_STAGES  # stages of one native splitter (a SplitterChain)


@functools.lru_cache(maxsize=1)
def _check_native_tables() -> None:
    # The C side and this package must agree on the instruction set and the property layout; a stale
    # build of the extension would otherwise misread programs silently.
    from . import compiler, unicode_properties

    table = ",".join(f"{name}:{operands}" for name, (_, operands) in compiler.OPCODES.items())
    if _native.SPLIT_OPCODES != table or [code for code, _ in compiler.OPCODES.values()] != list(range(len(compiler.OPCODES))):
        raise ImportError(f"native splitter opcodes {_native.SPLIT_OPCODES!r} != compiler's {table!r}: rebuild")
    if _native.SPLIT_ASSERTIONS != ",".join(compiler.ASSERTIONS):
        raise ImportError("native splitter assertions differ from the compiler's: rebuild the extension")
    if _native.UNICODE_PROPS_LAYOUT != unicode_properties.LAYOUT:
        raise ImportError("native unicode_props.h layout differs from unicode_properties.py: regenerate, rebuild")


class Splitter:
    """One split pattern compiled for the native core. Immutable; safe to share between threads."""

    def __init__(self, pattern: str, dialect: Dialect, *, builtin: str | None, program: _native.SplitProgram | None,
                 use_builtin: bool = True):
        self.pattern = pattern
        self.dialect = dialect
        self.builtin = builtin  # name of the hand-written scanner used, or None
        self._program = program  # None when a scanner is used
        self._use_builtin = use_builtin
        self._native_stage = builtin if builtin is not None else program
        self._splitters = {
            mode: _native.PieceSplitter([(self._native_stage, mode)]) for mode in ("findall", "isolated")
        }

    def __repr__(self) -> str:
        return f"<Splitter {self.pattern!r} {self.dialect}{' (scanner ' + self.builtin + ')' if self.builtin else ''}>"

    def __reduce__(self):
        return _rebuild_splitter, (self.pattern, self.dialect, self._use_builtin)

    def __eq__(self, other) -> bool:
        return (isinstance(other, Splitter) and (self.pattern, self.dialect, self._use_builtin) ==
                (other.pattern, other.dialect, other._use_builtin))

    def __hash__(self) -> int:
        return hash((self.pattern, self.dialect, self._use_builtin))

    def findall(self, text: str) -> list[str]:
        """The matches, in order, as the dialect's reference iterates them (unmatched text is skipped)."""
        return self._splitters["findall"].split(text)

    def split_isolated(self, text: str) -> list[str]:
        """Matches and the gaps between them, in order, empty pieces dropped (HF Split, "Isolated")."""
        return self._splitters["isolated"].split(text)

    def native_splitter(self, mode: SplitMode = "findall") -> _native.PieceSplitter:
        """The native object BpeCore takes (for Encoding)."""
        return self._splitters[mode]

    def native_stage(self, mode: SplitMode) -> tuple:
        """This splitter as one stage of a native PieceSplitter (for SplitterChain)."""
        return (self._native_stage, mode)


class SplitterChain:
    """Stages applied in turn, each to every piece of the one before (HF `Sequence` of `Split`s).

    `mode` is every stage's behaviour: "isolated" (HF's, the default) or "findall"."""

    def __init__(self, splitters: Sequence[Splitter], *, mode: SplitMode = "isolated") -> None:
        splitters = tuple(splitters)
        if not 1 <= len(splitters) <= MAX_STAGES:
            raise ValueError(f"a SplitterChain has 1 to {MAX_STAGES} splitters, got {len(splitters)}")
        if mode not in ("findall", "isolated"):
            raise ValueError(f"mode must be 'findall' or 'isolated', got {mode!r}")
        self.splitters = splitters
        self.mode = mode
        self._native = _native.PieceSplitter([splitter.native_stage(mode) for splitter in splitters])

    def __repr__(self) -> str:
        return f"<SplitterChain {self.mode} {[s.pattern for s in self.splitters]!r}>"

    def __reduce__(self):
        return _rebuild_chain, (self.splitters, self.mode)

    def __eq__(self, other) -> bool:
        return isinstance(other, SplitterChain) and self.mode == other.mode and self.splitters == other.splitters

    def __hash__(self) -> int:
        return hash((self.mode, self.splitters))

    def split(self, text: str) -> list[str]:
        return self._native.split(text)

    def native_splitter(self) -> _native.PieceSplitter:
        return self._native


def _rebuild_chain(splitters: tuple[Splitter, ...], mode: SplitMode) -> SplitterChain:
    return SplitterChain(splitters, mode=mode)


def _rebuild_splitter(pattern: str, dialect: Dialect, use_builtin: bool) -> Splitter:
    return compile_splitter(pattern, dialect=dialect, use_builtin=use_builtin)


def compile_program(pattern: str, dialect: Dialect) -> _native.SplitProgram:
    """The general matcher's program for `pattern`; raises UnsupportedPattern."""
    from . import compiler
    from .syntax import parse

    _check_native_tables()
    program = compiler.compile_program(parse(pattern, dialect), dialect)
    return _native.SplitProgram(
        program.code.tobytes(),
        program.class_words().tobytes(),
        dialect=dialect,
        n_slots=program.n_slots,
        n_memo=program.n_memo,
        start_class=program.start_class,
    )


def compile_splitter(pattern: str, *, dialect: Dialect = "python-regex", use_builtin: bool = True) -> Splitter:
    """Compile `pattern` for the native core, or raise ModelFormatError naming what is not supported.

    A pattern that a hand-written scanner implements (and that reads the same in `dialect`) gets that
    scanner unless `use_builtin=False` (the tests compare both)."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be str, got {type(pattern).__name__}")
    builtin = _builtin_scanner(pattern, dialect) if use_builtin else None
    if builtin is not None:
        return Splitter(pattern, dialect, builtin=builtin, program=None)
    from .nodes import UnsupportedPattern

    try:
        program = compile_program(pattern, dialect)
    except UnsupportedPattern as exc:
        raise ModelFormatError(f"split pattern {_shorten(pattern)} ({dialect}): {exc}") from None
    return Splitter(pattern, dialect, builtin=None, program=program, use_builtin=use_builtin)


def _builtin_scanner(pattern: str, dialect: Dialect) -> str | None:
    """The scanner that runs `pattern`: by its spelling, else by its syntax tree (a file may spell the
    same regex otherwise: DeepSeek-V3's stages with `\\u3040` and `\\r` escapes where ours have the
    characters; the same tree compiles to the same program, so it matches the same pieces)."""
    builtin = BUILTIN_SCANNERS.get((pattern, dialect))
    if builtin is not None:
        return builtin
    from .nodes import UnsupportedPattern
    from .syntax import parse

    try:
        tree = parse(pattern, dialect)
    except UnsupportedPattern:
        return None
    return _builtin_scanners_by_tree().get((tree, dialect))


@functools.cache
def _builtin_scanners_by_tree() -> dict:
    """(syntax tree, dialect) -> scanner name, for every pattern of BUILTIN_SCANNERS (parsed on first use)."""
    from .syntax import parse

    return {(parse(pattern, dialect), dialect): name for (pattern, dialect), name in BUILTIN_SCANNERS.items()}


def _shorten(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 120 else pattern[:117] + "...")
