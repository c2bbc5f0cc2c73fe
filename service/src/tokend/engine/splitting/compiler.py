"""Compile a parsed split pattern into the program the native matcher runs (service/native/split_program.c).

>>> from tokend.engine.splitting.syntax import parse
>>> program = compile_program(parse(r"\\p{L}+|\\s", "python-regex"), "python-regex")
>>> program.opcode_names()
['SPLIT', 'RUN', 'MATCH', 'CLASS', 'MATCH']

The program is a list of 32-bit words: an opcode, then its operands (table in split_program.h, names in
OPCODES). It is a backtracking program with the semantics of the dialect's reference (leftmost-first
alternation, greedy/lazy/possessive repeats, atomic groups, lookahead):
- a repeated character class is one RUN instruction: it scans the run at once and, when backtracked
  into, gives characters back one at a time (the native side caches run ends and the positions where the
  rest of the pattern already failed, see split_matcher.c for the bound this gives). A greedy run whose
  continuation cannot use what it would give back (the rest always matches, or starts with characters the
  run's class lacks) is compiled possessive, as PCRE does ("auto-possessification"): no backtracking frame;
- an alternative whose first character cannot be the next one is skipped without entering it: every SPLIT
  carries a guard class computed here (the set of characters a non-empty match of the branch can start with);
- a lookahead of one character class is a PEEK; other lookaheads and atomic groups run their body as a
  sub-match (LOOK, ATOMIC ... SUCCEED);
- other repeats are unrolled copies and SPLIT loops; a loop whose body can match the empty string is
  refused (UnsupportedPattern), so every loop iteration consumes a character.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from .. import _native
from .charset import CharSet
from .nodes import Alternation, Assertion, Atomic, Chars, Lookahead, Repeat, Sequence, UnsupportedPattern

__all__ = ["OPCODES", "ASSERTIONS", "Program", "compile_program", "MAX_PROGRAM_WORDS"]

# name -> (opcode, number of operands); must equal split_program.h (the native module exports its table and
# the splitter checks they agree when it loads).
OPCODES = {
    "MATCH": (0, 0),
    "SUCCEED": (1, 0),
    "CHAR": (2, 1),  # code point
    "CLASS": (3, 1),  # class
    "JMP": (4, 1),  # target
    "SPLIT": (5, 4),  # primary, secondary, guard class (NO_CLASS: none), memo point
    "RUN": (6, 6),  # class, min, max (NO_MAX: unbounded), mode, slot, memo point
    "ASSERT": (7, 1),  # kind
    "PEEK": (8, 2),  # class, negated
    "LOOK": (9, 3),  # negated, end, slot; body follows, ends with SUCCEED
    "ATOMIC": (10, 2),  # end, slot; body follows, ends with SUCCEED
    # first character -> where to start an alternation: 128 targets for ASCII, one for anything else
    "DISPATCH": (11, 129),
}
ASSERTIONS = (
    "text_start",
    "text_end",
    "text_end_or_final_newline",
    "line_start",
    "line_end",
    "word_boundary",
    "not_word_boundary",
)
RUN_MODES = {"greedy": 0, "lazy": 1, "possessive": 2}
NO_CLASS = 0xFFFFFFFF
NO_MAX = 0xFFFFFFFF
DISPATCH_MIN_BRANCHES = 3  # below this a DISPATCH costs more than the guards it skips
MAX_PROGRAM_WORDS = 1 << 20
MAX_NESTING = 32  # lookahead / atomic bodies inside each other (native recursion depth)


@dataclass(frozen=True)
class Follow:
    """What the code after a node does: `first` holds every character it can consume first (None:
    unknown), `always` says it can succeed without consuming anything (a free end)."""

    first: tuple[CharSet, ...] | None
    always: bool


UNKNOWN = Follow(None, False)
FREE_END = Follow((), True)  # the end of the match, or of a lookahead / atomic body


@dataclass
class Program:
    dialect: str
    code: array = field(default_factory=lambda: array("I"))
    classes: list[CharSet] = field(default_factory=list)
    n_slots: int = 0  # RUN / LOOK / ATOMIC caches
    n_memo: int = 0  # SPLIT and backtracking RUN states remembered when the matcher turns memoization on
    start_class: int = NO_CLASS  # every match starts with a character of this class (NO_CLASS: unknown)

    def opcode_names(self) -> list[str]:
        by_code = {code: (name, operands) for name, (code, operands) in OPCODES.items()}
        names, pc = [], 0
        while pc < len(self.code):
            name, operands = by_code[self.code[pc]]
            names.append(name)
            pc += 1 + operands
        return names

    def class_words(self) -> array:
        """The classes as the native side reads them: per class 8 words of signature mask (little-endian
        64-bit halves), negated, number of ranges, then (low, high) pairs."""
        words = array("I")
        for charset in self.classes:
            for index in range(8):
                words.append(charset.signatures >> (32 * index) & 0xFFFFFFFF)
            words.append(int(charset.negated))
            words.append(len(charset.ranges))
            for low, high in charset.ranges:
                words.extend((low, high))
        return words


def compile_program(node, dialect: str) -> Program:
    if estimated_words(node) > MAX_PROGRAM_WORDS:  # refuse before spending the time to emit it
        raise UnsupportedPattern(f"a program of more than {MAX_PROGRAM_WORDS} words (large repeat counts)", 0)
    compiler = _Compiler(Program(dialect))
    start = guard_set(node)
    if start is not None:
        compiler.program.start_class = compiler.klass(start)
    if not compiler.emit(node, depth=0, tail=True, follow=FREE_END):
        compiler.op("MATCH")
    return compiler.program


# ---- analysis -------------------------------------------------------------------------------------------


def nullable(node) -> bool:
    """Can `node` match the empty string?"""
    if isinstance(node, Chars):
        return False
    if isinstance(node, Sequence):
        return all(nullable(item) for item in node.items)
    if isinstance(node, Alternation):
        return any(nullable(branch) for branch in node.branches)
    if isinstance(node, Repeat):
        return node.minimum == 0 or nullable(node.item)
    if isinstance(node, Atomic):
        return nullable(node.item)
    return True  # Assertion, Lookahead


def estimated_words(node) -> int:
    """An upper bound of the program words `node` compiles to (repeats of groups are unrolled)."""
    if isinstance(node, Chars):
        return 2
    if isinstance(node, Sequence):
        return sum(estimated_words(item) for item in node.items)
    if isinstance(node, Alternation):
        return 130 + sum(estimated_words(branch) + 7 for branch in node.branches)
    if isinstance(node, Repeat):
        if isinstance(node.item, Chars):
            return 7
        body = estimated_words(node.item) + 5
        copies = node.minimum + (1 if node.maximum is None else node.maximum - node.minimum)
        return 4 + body * copies
    if isinstance(node, (Lookahead, Atomic)):
        return 5 + estimated_words(node.item)
    return 2


def first_sets(node) -> list[CharSet]:
    """Sets whose union contains every character a non-empty match of `node` can start with."""
    if isinstance(node, Chars):
        return [node.charset]
    if isinstance(node, Sequence):
        sets = []
        for item in node.items:
            sets += first_sets(item)
            if not nullable(item):
                break
        return sets
    if isinstance(node, Alternation):
        return [charset for branch in node.branches for charset in first_sets(branch)]
    if isinstance(node, (Repeat, Atomic)):
        return first_sets(node.item)
    return []  # zero-width


def guard_set(node) -> CharSet | None:
    """One set for the SPLIT guard, or None when `node` can match empty (no guard possible)."""
    if nullable(node):
        return None
    sets = first_sets(node)
    if len(sets) == 1:
        return sets[0]
    union = CharSet()
    for charset in sets:
        union = union.union(charset.superset_without_negation())
    return union


def _has_zero_width(node) -> bool:
    if isinstance(node, (Assertion, Lookahead)):
        return True
    if isinstance(node, Sequence):
        return any(_has_zero_width(item) for item in node.items)
    if isinstance(node, Alternation):
        return any(_has_zero_width(branch) for branch in node.branches)
    if isinstance(node, (Repeat, Atomic)):
        return _has_zero_width(node.item)
    return False


def follow_of(items, after: Follow) -> Follow:
    """The Follow of whatever precedes `items` (a sequence's tail), given the Follow after them."""
    first: list[CharSet] = []
    for item in items:
        if _has_zero_width(item):
            return UNKNOWN  # an assertion may fail where nothing is consumed: no conclusion
        first += first_sets(item)
        if not nullable(item):
            return Follow(tuple(first), False)
    # Every item can match empty (and has no assertion), so the rest can end where `after` does.
    return Follow(None if after.first is None else tuple(first) + after.first, after.always)


_MAX_DISJOINT_CHECK = 4096  # code points of explicit ranges looked up one by one


def disjoint(charset: CharSet, others) -> bool:
    """True only when no character is in `charset` and in one of `others` (False when unsure)."""
    if charset.negated:
        return False
    for other in others:
        if other.negated or charset.signatures & other.signatures:
            return False
        if any(a_low <= b_high and b_low <= a_high for a_low, a_high in charset.ranges for b_low, b_high in other.ranges):
            return False
        for ranges, signatures in ((charset.ranges, other.signatures), (other.ranges, charset.signatures)):
            if sum(high - low + 1 for low, high in ranges) > _MAX_DISJOINT_CHECK:
                return False
            if any(signatures >> _native.unicode_property(cp) & 1 for low, high in ranges for cp in range(low, high + 1)):
                return False
    return True


def _admits(charset: CharSet, char: int) -> bool:
    """Does `charset` contain the ASCII character `char`? (ASCII property bytes are known exactly.)"""
    return charset.contains(char, properties=_native.unicode_property(char))


def _simplify(node):
    """Oniguruma's repeat of a repeat of one class, (?:c{a,b})+ with a <= 1, is c{a,}: the same ends in the
    same order (checked against `tokenizers` by the tests); anything else stays as written."""
    if (
        isinstance(node, Repeat)
        and isinstance(node.item, Repeat)
        and isinstance(node.item.item, Chars)
        and node.minimum == 1
        and node.maximum is None
        and node.mode == node.item.mode == "greedy"
        and node.item.minimum <= 1
    ):
        return Repeat(node.item.item, node.item.minimum, None, "greedy")
    return node


# ---- code generation ------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.code = program.code
        self.class_index: dict[CharSet, int] = {}

    def op(self, name: str, *operands: int) -> int:
        opcode, count = OPCODES[name]
        assert len(operands) == count, name
        at = len(self.code)
        self.code.append(opcode)
        self.code.extend(operands)
        if len(self.code) > MAX_PROGRAM_WORDS:
            raise UnsupportedPattern(f"a program of more than {MAX_PROGRAM_WORDS} words (large repeat counts)", 0)
        return at

    def klass(self, charset: CharSet) -> int:
        if charset not in self.class_index:
            self.class_index[charset] = len(self.program.classes)
            self.program.classes.append(charset)
        return self.class_index[charset]

    def slot(self) -> int:
        self.program.n_slots += 1
        return self.program.n_slots - 1

    def memo(self) -> int:
        self.program.n_memo += 1
        return self.program.n_memo - 1

    def patch(self, at: int, operand: int, value: int) -> None:
        self.code[at + 1 + operand] = value

    def split(self, next_first: bool, guarded_branch) -> tuple[int, int]:
        """A SPLIT between the next instruction and a target patched later: the next instruction is tried
        first when `next_first` (and then guarded by `guarded_branch`'s first characters), else second.
        Returns (its position, the operand to patch with the other target)."""
        guard = guard_set(guarded_branch) if next_first and guarded_branch is not None else None
        at = self.op("SPLIT", 0, 0, self.klass(guard) if guard is not None else NO_CLASS, self.memo())
        self.patch(at, 0 if next_first else 1, len(self.code))
        return at, 1 if next_first else 0

    def emit(self, node, depth: int, tail: bool = False, follow: Follow = UNKNOWN) -> bool:
        """Code for `node`, followed by code that behaves as `follow` says; when `tail` (nothing follows
        but the end of the match), branches may end in MATCH themselves instead of jumping to one: returns
        True when the code already ends in MATCH."""
        node = _simplify(node)
        if isinstance(node, Alternation):
            return self.alternation(node, depth, tail, follow)
        if isinstance(node, Sequence) and node.items:
            items = node.items
            for index, item in enumerate(items[:-1]):
                self.emit(item, depth, follow=follow_of(items[index + 1 :], follow))
            return self.emit(items[-1], depth, tail, follow)
        self._emit_other(node, depth, follow)
        return False

    def _emit_other(self, node, depth: int, follow: Follow) -> None:
        if isinstance(node, Chars):
            single = node.charset.single_code_point()
            if single is not None:
                self.op("CHAR", single)
            else:
                self.op("CLASS", self.klass(node.charset))
        elif isinstance(node, Sequence):  # empty
            pass
        elif isinstance(node, Repeat):
            self.repeat(node, depth, follow)
        elif isinstance(node, Assertion):
            self.op("ASSERT", ASSERTIONS.index(node.kind))
        elif isinstance(node, Lookahead):
            if isinstance(node.item, Chars):
                self.op("PEEK", self.klass(node.item.charset), int(node.negated))
            else:
                self.sub_match("LOOK", node.item, depth, negated=int(node.negated))
        elif isinstance(node, Atomic):
            item = _simplify(node.item)
            if isinstance(item, Repeat) and isinstance(item.item, Chars) and item.mode == "greedy":
                self.repeat(Repeat(item.item, item.minimum, item.maximum, "possessive"), depth)
            elif isinstance(item, Chars):
                self.emit(item, depth)
            else:
                self.sub_match("ATOMIC", item, depth)
        else:  # pragma: no cover - the parser builds nothing else
            raise TypeError(node)

    def sub_match(self, name: str, body, depth: int, **operands: int) -> None:
        if depth >= MAX_NESTING:
            raise UnsupportedPattern(f"lookaheads or atomic groups nested more than {MAX_NESTING} deep", 0)
        at = self.op(name, operands["negated"], 0, self.slot()) if name == "LOOK" else self.op(name, 0, self.slot())
        self.emit(body, depth + 1, follow=FREE_END)  # the body's first success is all that counts
        self.op("SUCCEED")
        self.patch(at, 1 if name == "LOOK" else 0, len(self.code))

    def alternation(self, node: Alternation, depth: int, tail: bool, follow: Follow) -> bool:
        dispatch = None
        guarded = [guard_set(branch) for branch in node.branches[:-1]]
        if sum(guard is not None for guard in guarded) >= DISPATCH_MIN_BRANCHES:
            dispatch = self.op("DISPATCH", *([0] * 129))
        jumps, splits = [], []
        for index, branch in enumerate(node.branches):
            if index == len(node.branches) - 1:
                last = len(self.code)
                ends_in_match = self.emit(branch, depth, tail, follow)
                break
            at, other = self.split(True, branch)
            splits.append((at, guarded[index]))
            if self.emit(branch, depth, tail, follow):
                pass
            elif tail:
                self.op("MATCH")
            else:
                jumps.append(self.op("JMP", 0))
            self.patch(at, other, len(self.code))
        if tail and not ends_in_match:
            self.op("MATCH")
        for jump in jumps:
            self.patch(jump, 0, len(self.code))
        if dispatch is not None:
            # An ASCII character goes straight to the first SPLIT whose guard admits it (or to the last
            # branch); anything else, and the end of the text, to the first SPLIT.
            for char in range(128):
                target = next((at for at, guard in splits if guard is None or _admits(guard, char)), last)
                self.patch(dispatch, char, target)
            self.patch(dispatch, 128, splits[0][0])
        return tail

    def repeat(self, node: Repeat, depth: int, follow: Follow = UNKNOWN) -> None:
        item, minimum, maximum, mode = node.item, node.minimum, node.maximum, node.mode
        if isinstance(item, Chars):
            # Giving characters back cannot help when the rest always matches (the first end succeeds) or
            # must start with a character outside the class (every shorter end fails).
            if mode == "greedy" and (follow.always or (follow.first is not None and disjoint(item.charset, follow.first))):
                mode = "possessive"
            self.op("RUN", self.klass(item.charset), minimum, NO_MAX if maximum is None else maximum,
                    RUN_MODES[mode], self.slot(), self.memo())
            return
        if mode == "possessive":
            self.sub_match("ATOMIC", Repeat(item, minimum, maximum, "greedy"), depth)
            return
        for _ in range(minimum):
            self.emit(item, depth)
        greedy = mode == "greedy"
        if maximum is None:
            if nullable(item):
                raise UnsupportedPattern("an unbounded repeat of a group that can match the empty string", 0)
            head, other = self.split(greedy, item)
            self.emit(item, depth)
            self.op("JMP", head)
            self.patch(head, other, len(self.code))
            return
        exits = []
        for _ in range(maximum - minimum):
            exits.append(self.split(greedy, item))
            self.emit(item, depth)
        for at, other in exits:
            self.patch(at, other, len(self.code))
