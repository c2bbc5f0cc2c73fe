"""Parse a split pattern into a small AST, in one of two dialects, refusing what the native matcher lacks.

>>> parse(r"'s|\\p{L}+", "python-regex")
Alternation(branches=(Sequence(items=(Chars(...), Chars(...))), Repeat(item=Chars(...), minimum=1, maximum=None, mode='greedy')))

Dialects (where the references differ, measured against them):
- "python-regex": the `regex` module (tiktoken's patterns; tiktoken's fancy-regex agrees on them):
  `^`/`\\A` = start of text, `$` = end of text or before a final "\\n", `\\Z` = end of text, `X?+`/`X*+`/
  `X++`/`X{n,m}+` possessive.
- "oniguruma": Hugging Face `tokenizers` (Ruby syntax): `^`/`$` = start/end of a line, `\\A` start, `\\z` end,
  `\\Z` end or before a final "\\n"; `X?+`, `X*+`, `X++` possessive but `X{n,m}+` a repeat of a repeat
  (`(?:X{n,m})+`, not possessive); `\\w` has its own table; `(?i)` also folds multi-character sequences
  ("ss" ~ "ß").

Supported: literals and escapes (`\\t \\n \\r \\f \\v \\a`, `\\xHH`, `\\uHHHH`, escaped punctuation),
`[...]` classes with ranges, `^` negation, `\\p{..}`/`\\P{..}`/`\\p{^..}` General_Category (two-letter names
and the groups L M N P S Z C), `\\s \\S \\d \\D \\w \\W`, `.`; groups `(...)`, `(?:...)`, `(?<name>...)`,
`(?>...)` atomic, `(?=...)`/`(?!...)` lookahead, `(?i:...)`/`(?-i:...)` and a leading `(?i)`; quantifiers
`? * + {n} {n,} {n,m} {,m}` greedy, lazy (`?`) or possessive (python-regex `+`); anchors `^ $ \\A \\Z \\z
\\b \\B`; alternation. Everything else (backreferences, lookbehind, scripts such as `\\p{Han}`, nested
classes, other inline flags, ...) raises `UnsupportedPattern` naming the construct.
"""

from __future__ import annotations

from . import unicode_properties as props
from .charset import CharSet, case_variants, multi_character_folds
from .pattern_bounds import check_pattern_bounds
from .nodes import (
    DIALECTS,
    Alternation,
    Assertion,
    Atomic,
    Chars,
    Dialect,
    Lookahead,
    Repeat,
    Sequence,
    UnsupportedPattern,
)

__all__ = ["Dialect", "DIALECTS", "UnsupportedPattern", "parse"]

MAX_REPEAT = 100_000


# ---- parser ---------------------------------------------------------------------------------------------

_CLASS_ESCAPES = {"d": "Nd", "s": "space", "w": "word"}
_CONTROL_ESCAPES = {"t": 9, "n": 10, "v": 11, "f": 12, "r": 13, "a": 7}
_REFUSED_ESCAPES = {
    "G": "\\G (continue-at anchor)",
    "K": "\\K (keep-out)",
    "R": "\\R (line break sequence)",
    "X": "\\X (grapheme cluster)",
    "N": "\\N (named character or non-newline)",
    "h": "\\h (hex digit in Oniguruma, horizontal space elsewhere)",
    "H": "\\H",
    "k": "\\k (named backreference)",
    "g": "\\g (subexpression call)",
    "O": "\\O",
    "y": "\\y",
    "Y": "\\Y",
}


def parse(pattern: str, dialect: Dialect):
    """The AST of `pattern` in `dialect`; raises UnsupportedPattern."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {DIALECTS}, got {dialect!r}")
    check_pattern_bounds(pattern)  # PatternTooComplex: not an UnsupportedPattern, so no fallback engine tries it
    return _Parser(pattern, dialect).parse()


class _Parser:
    def __init__(self, pattern: str, dialect: Dialect) -> None:
        self.pattern = pattern
        self.dialect = dialect
        self.onig = dialect == "oniguruma"
        self.pos = 0

    # -- helpers

    def _peek(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.pattern[index] if index < len(self.pattern) else ""

    def _refuse(self, what: str, offset: int | None = None):
        raise UnsupportedPattern(f"{what} is not supported", self.pos if offset is None else offset)

    def _fail(self, what: str, offset: int | None = None):
        raise UnsupportedPattern(f"the pattern does not parse: {what}", self.pos if offset is None else offset)

    # -- grammar

    def parse(self):
        ignore_case = False
        if self.pattern.startswith("(?i)"):
            ignore_case = True
            self.pos = 4
        node = self._alternation(ignore_case)
        if self.pos < len(self.pattern):
            self._fail("unbalanced ')'")
        return node

    def _alternation(self, ignore_case: bool):
        branches = [self._sequence(ignore_case)]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence(ignore_case))
        return branches[0] if len(branches) == 1 else Alternation(tuple(branches))

    def _sequence(self, ignore_case: bool):
        items = []
        literal_run: list[int] = []  # case-insensitive ASCII literals in a row (Oniguruma's multi-char folds)
        while self.pos < len(self.pattern) and self._peek() not in "|)":
            start = self.pos
            atom, literal = self._atom(ignore_case)
            atom = self._quantifiers(atom, start)
            if atom is None:
                continue  # a comment group
            if ignore_case and literal is not None and atom is not None and isinstance(atom, Chars):
                literal_run.append(literal)
                self._check_multi_character_folds(literal_run, start)
            else:
                literal_run = []
            items.append(atom)
        return items[0] if len(items) == 1 else Sequence(tuple(items))

    def _check_multi_character_folds(self, run: list[int], offset: int) -> None:
        if not self.onig:
            return
        text = "".join(chr(cp) for cp in run).lower()
        for fold in multi_character_folds():
            if text.endswith(fold):
                self._refuse(f"case-insensitive {fold!r} (Oniguruma matches it as one character, e.g. "
                             f"'\\u00df' for 'ss')", offset)

    def _atom(self, ignore_case: bool):
        """(node, literal code point or None). Comment groups return (None, None)."""
        char = self._peek()
        start = self.pos
        if char == "(":
            return self._group(ignore_case), None
        if char == "[":
            return Chars(self._class(ignore_case)), None
        if char == ".":
            self.pos += 1
            return Chars(CharSet.of_char(10).negate()), None
        if char == "^":
            self.pos += 1
            return Assertion("line_start" if self.onig else "text_start"), None
        if char == "$":
            self.pos += 1
            return Assertion("line_end" if self.onig else "text_end_or_final_newline"), None
        if char in "*+?":
            self._fail(f"nothing to repeat before {char!r}")
        if char == "{" and self._repeat_bounds() is not None:
            self._fail("nothing to repeat before '{'")
        if char == "\\":
            node = self._escape_outside_class(ignore_case)
            if isinstance(node, int):
                return self._literal(node, ignore_case, start), node
            return node, None
        self.pos += 1
        self._check_not_surrogate(ord(char), start)
        return self._literal(ord(char), ignore_case, start), ord(char)

    def _check_not_surrogate(self, code_point: int, offset: int) -> None:
        if 0xD800 <= code_point < 0xE000:
            self._refuse(f"the surrogate U+{code_point:04X}", offset)

    def _literal(self, code_point: int, ignore_case: bool, offset: int) -> Chars:
        return Chars(self._fold(CharSet.of_char(code_point), ignore_case, offset))

    def _fold(self, charset: CharSet, ignore_case: bool, offset: int) -> CharSet:
        if not ignore_case or not charset.ranges:
            return charset
        ranges = []
        for low, high in charset.ranges:
            if high - low > 4096:
                self._refuse("a case-insensitive range of more than 4096 characters", offset)
            if self.onig and high >= 0x80:
                self._refuse("case-insensitive matching of non-ASCII characters in the oniguruma dialect "
                             "(Oniguruma folds some to several characters)", offset)
            for cp in range(low, high + 1):
                for variant in case_variants(cp):
                    # Oniguruma folds fully: a variant that folds to several characters (U+0130 -> "i\u0307")
                    # matches that sequence there, not the letter (measured: (?i:i) misses U+0130).
                    if not self.onig or variant == cp or len(chr(variant).casefold()) == 1:
                        ranges.append((variant, variant))
        return CharSet(CharSet.of_ranges(ranges).ranges, charset.signatures, charset.negated)

    def _group(self, ignore_case: bool):
        start = self.pos
        self.pos += 1
        kind = "group"
        if self._peek() == "?":
            rest = self.pattern[self.pos + 1 :]
            if rest.startswith(":"):
                self.pos += 2
            elif rest.startswith(">"):
                kind, self.pos = "atomic", self.pos + 2
            elif rest.startswith("="):
                kind, self.pos = "lookahead", self.pos + 2
            elif rest.startswith("!"):
                kind, self.pos = "negative lookahead", self.pos + 2
            elif rest.startswith("<=") or rest.startswith("<!"):
                self._refuse("lookbehind (?<=...) / (?<!...)", start)
            elif rest.startswith("#"):
                end = self.pattern.find(")", self.pos)
                if end < 0:
                    self._fail("unterminated comment group", start)
                self.pos = end + 1
                return None
            elif rest.startswith("<") or (rest.startswith("P<") and not self.onig):
                end = self.pattern.find(">", self.pos)
                name = self.pattern[self.pos + (2 if rest.startswith("<") else 3) : end]
                if end < 0 or not name.isidentifier():
                    self._fail("bad group name", start)
                self.pos = end + 1
            elif rest.startswith("i:"):
                ignore_case, self.pos = True, self.pos + 3
            elif rest.startswith("-i:"):
                ignore_case, self.pos = False, self.pos + 4
            else:
                flags = rest[: max(rest.find(")"), rest.find(":"), 0)]
                self._refuse(f"the group or inline flag '(?{flags}' (only (?:, (?>, (?=, (?!, (?i:, (?-i:, "
                             "named groups and a leading (?i) are)", start)
        node = self._alternation(ignore_case)
        if self._peek() != ")":
            self._fail("missing ')'", start)
        self.pos += 1
        if kind == "atomic":
            return Atomic(node)
        if kind in ("lookahead", "negative lookahead"):
            return Lookahead(node, kind == "negative lookahead")
        return node

    # -- quantifiers

    def _repeat_bounds(self) -> tuple[int, int | None, int] | None:
        """(min, max, length) of a `{...}` at self.pos, or None when it is a literal '{'."""
        end = self.pattern.find("}", self.pos)
        if end < 0:
            return None
        body = self.pattern[self.pos + 1 : end]
        low, comma, high = body.partition(",")
        if not (low.isdigit() or (comma and low == "")) or not (high.isdigit() or high == "") or not body:
            return None
        if not low.isascii() or not high.isascii():
            return None
        if comma and not low and not high:
            self._refuse("'{,}' (the dialects disagree on it)")
        minimum = int(low) if low else 0
        maximum = (int(high) if high else None) if comma else minimum
        if minimum > MAX_REPEAT or (maximum is not None and maximum > MAX_REPEAT):
            self._refuse(f"a repeat count above {MAX_REPEAT}")
        if maximum is not None and maximum < minimum:
            self._fail("repeat bounds out of order")
        return minimum, maximum, end + 1 - self.pos

    def _base_quantifier(self) -> tuple[int, int | None, bool] | None:
        """(min, max, written as {...}) of the quantifier at self.pos, or None."""
        char = self._peek()
        if char in ("?", "*", "+"):
            self.pos += 1
            return {"?": (0, 1), "*": (0, None), "+": (1, None)}[char] + (False,)
        if char == "{":
            bounds = self._repeat_bounds()
            if bounds is not None:
                self.pos += bounds[2]
                return bounds[0], bounds[1], True
        return None

    def _quantifiers(self, atom, start: int):
        if atom is None:
            return None
        bounds = self._base_quantifier()
        if bounds is None:
            return atom
        minimum, maximum, braces = bounds
        if isinstance(atom, (Assertion, Lookahead)):
            self._refuse("a quantifier on an assertion or lookahead", start)
        mode = "greedy"
        if self._peek() == "?":
            self.pos += 1
            mode = "lazy"
        elif self._peek() == "+":
            self.pos += 1
            if self.onig and braces:
                # Ruby syntax: X{n,m}+ is a repeat of a repeat, (?:X{n,m})+, not possessive (measured:
                # tokenizers matches all of "1234567" with \p{N}{1,3}+); X?+ X*+ X++ are possessive.
                if self._peek() in ("?", "*", "+") or (self._peek() == "{" and self._repeat_bounds()):
                    self._refuse("more than two stacked quantifiers", start)
                return Repeat(Repeat(atom, minimum, maximum, "greedy"), 1, None, "greedy")
            mode = "possessive"
        if self._peek() in ("?", "*", "+") or (self._peek() == "{" and self._repeat_bounds()):
            self._refuse("stacked quantifiers", start)
        return Repeat(atom, minimum, maximum, mode)

    # -- escapes

    def _hex(self, digits: int, offset: int) -> int:
        text = self.pattern[self.pos : self.pos + digits]
        if len(text) != digits or any(c not in "0123456789abcdefABCDEF" for c in text):
            self._fail("bad hexadecimal escape", offset)
        self.pos += digits
        return int(text, 16)

    def _code_point_escape(self, letter: str, offset: int) -> int | None:
        """The code point of \\x.. \\u.. \\U.. \\t ..., with self.pos after the letter; None if not one."""
        if letter == "x":
            if self._peek() == "{":
                if not self.onig:
                    self._refuse("\\x{...} in the python-regex dialect", offset)
                end = self.pattern.find("}", self.pos)
                text = self.pattern[self.pos + 1 : end]
                if end < 0 or not text or any(c not in "0123456789abcdefABCDEF" for c in text):
                    self._fail("bad \\x{...} escape", offset)
                self.pos = end + 1
                value = int(text, 16)
            else:
                value = self._hex(2, offset)
        elif letter == "u":
            value = self._hex(4, offset)
        elif letter == "U" and not self.onig:
            value = self._hex(8, offset)
        elif letter in _CONTROL_ESCAPES:
            value = _CONTROL_ESCAPES[letter]
        elif letter == "e" and self.onig:
            value = 27
        else:
            return None
        if value > 0x10FFFF or 0xD800 <= value < 0xE000:
            self._refuse(f"the code point escape U+{value:X} (a surrogate or beyond Unicode)", offset)
        return value

    def _class_escape(self, letter: str, offset: int, ignore_case: bool) -> CharSet | None:
        """\\d \\s \\w \\p{..} and their negations as a set, with self.pos after the escape; None if not one."""
        lower = letter.lower()
        if lower in _CLASS_ESCAPES:
            name = _CLASS_ESCAPES[lower]
            if name == "Nd":
                mask = props.signature_mask("Nd")
            elif name == "space":
                mask = props.space_mask()
            else:
                mask = props.word_mask(oniguruma=self.onig)
            return CharSet(signatures=mask if letter == lower else props.ALL_SIGNATURES & ~mask)
        if lower != "p":
            return None
        negated = letter == "P"
        if self._peek() == "{":
            end = self.pattern.find("}", self.pos)
            if end < 0:
                self._fail("unterminated \\p{", offset)
            name = self.pattern[self.pos + 1 : end]
            self.pos = end + 1
            if name.startswith("^"):
                negated, name = not negated, name[1:]
        elif not self.onig and self._peek().isalpha():
            name = self._peek()
            self.pos += 1
        else:
            self._refuse("\\p without braces in the oniguruma dialect", offset)
        if name not in props.GENERAL_CATEGORIES and name not in props.CATEGORY_GROUPS:
            self._refuse(f"the Unicode property \\p{{{name}}} (only General_Category short names such as L, "
                         "Lu, N, Nd, P, S, M are)", offset)
        if ignore_case and name in ("Lu", "Ll", "Lt"):
            self._refuse(f"\\p{{{name}}} under (?i) (the references widen case classes differently)", offset)
        mask = props.signature_mask(name)
        return CharSet(signatures=props.ALL_SIGNATURES & ~mask if negated else mask)

    def _escape_common(self, offset: int, inside_class: bool, ignore_case: bool):
        """A code point (int) or a CharSet for the escape at self.pos (the backslash)."""
        self.pos += 1
        letter = self._peek()
        if not letter:
            self._fail("trailing backslash", offset)
        self.pos += 1
        if not letter.isalnum():
            return ord(letter)
        code_point = self._code_point_escape(letter, offset)
        if code_point is not None:
            return code_point
        charset = self._class_escape(letter, offset, ignore_case)
        if charset is not None:
            return charset
        if letter.isdigit():
            self._refuse(f"\\{letter} (backreference or octal escape)", offset)
        if letter in _REFUSED_ESCAPES:
            self._refuse(_REFUSED_ESCAPES[letter], offset)
        if inside_class:
            self._refuse(f"\\{letter} inside a class", offset)
        return letter  # an anchor letter, resolved by the caller

    def _escape_outside_class(self, ignore_case: bool):
        offset = self.pos
        value = self._escape_common(offset, inside_class=False, ignore_case=ignore_case)
        if isinstance(value, (int, CharSet)):
            return Chars(value) if isinstance(value, CharSet) else value
        anchors = {
            "A": "text_start",
            "b": "word_boundary",
            "B": "not_word_boundary",
            "Z": "text_end_or_final_newline" if self.onig else "text_end",
        }
        if value == "z" and self.onig:
            return Assertion("text_end")
        if value in anchors:
            return Assertion(anchors[value])
        self._refuse(f"the escape \\{value}", offset)

    # -- classes

    def _class(self, ignore_case: bool) -> CharSet:
        start = self.pos
        self.pos += 1
        negated = self._peek() == "^"
        if negated:
            self.pos += 1
        if self._peek() == "]":
            self._refuse("']' first in a class (escape it as '\\]')")
        result = CharSet()
        while True:
            char = self._peek()
            if not char:
                self._fail("missing ']'", start)
            if char == "]":
                self.pos += 1
                break
            if char == "[":
                self._refuse("'[' inside a class (nested classes, POSIX [:name:]; escape it as '\\[')")
            if char == "&" and self._peek(1) == "&":
                self._refuse("'&&' inside a class (class intersection)")
            item_offset = self.pos
            low = self._class_atom(ignore_case)
            if isinstance(low, CharSet):
                result = result.union(low)
                continue
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                high = self._class_atom(ignore_case)
                if isinstance(high, CharSet):
                    self._refuse("a range ending in a class escape", item_offset)
                if high < low:
                    self._fail("a class range out of order", item_offset)
                result = result.union(self._fold(CharSet.of_ranges([(low, high)]), ignore_case, item_offset))
            else:
                result = result.union(self._fold(CharSet.of_char(low), ignore_case, item_offset))
        return result.negate() if negated else result

    def _class_atom(self, ignore_case: bool) -> int | CharSet:
        offset = self.pos
        if self._peek() == "\\":
            value = self._escape_common(offset, inside_class=True, ignore_case=ignore_case)
            if isinstance(value, str):
                self._refuse(f"\\{value} inside a class", offset)
            return value
        char = self._peek()
        self.pos += 1
        self._check_not_surrogate(ord(char), offset)
        return ord(char)
