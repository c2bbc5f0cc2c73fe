"""The split-pattern compiler and matcher on the whole supported syntax, not only the recorded patterns:
random patterns against both references, the places where the dialects differ, what is refused (each
refusal names the construct), empty matches, chains, and malformed programs.

    >>> compile_splitter(r"(?<=a)b")
    Traceback (most recent call last):
    tokend.errors.ModelFormatError: split pattern '(?<=a)b' (python-regex): lookbehind (?<=...) / (?<!...) is not supported (at offset 0)
"""

from __future__ import annotations

import array

import pytest
import regex
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tests.engine._split_oracles import hf_isolated, regex_findall
from tokend.engine import _native
from tokend.engine.splitting import SplitterChain, compile_splitter
from tokend.errors import ModelFormatError


def regex_isolated(pattern: str, text: str) -> list[str]:
    """Matches and gaps as finditer gives them (the python-regex dialect's split_isolated)."""
    pieces, end = [], 0
    for match in regex.finditer(pattern, text):
        if match.start() > end:
            pieces.append(text[end : match.start()])
        if match.end() > match.start():
            pieces.append(match.group())
        end = match.end()
    if end < len(text):
        pieces.append(text[end:])
    return pieces


# ---- random patterns ----------------------------------------------------------------------------------

_ATOMS = ["a", "b", " ", "1", "'", "\\n", "A", "[ab]", "[^a]", "[a-c1]", "\\s", "\\S", "\\d", "\\w", "\\p{L}",
          "\\p{N}", "\\p{Lu}", "[^\\s\\p{L}]", ".", "(?i:a)", "(?i:[b-c])", "\\u00e9"]
_QUANTIFIERS = ["?", "*", "+", "??", "*?", "+?", "?+", "*+", "++", "{2}", "{1,2}", "{0,2}", "{2,}", "{1,2}?", "{,2}"]
_ANCHORS = {
    "python-regex": ["^", "$", "\\A", "\\Z", "\\b", "\\B"],
    "oniguruma": ["^", "$", "\\A", "\\Z", "\\z", "\\b", "\\B"],
}


def _patterns(dialect: str):
    leaves = st.one_of(st.sampled_from(_ATOMS), st.sampled_from(_ANCHORS[dialect]))
    quantifiers = st.sampled_from(_QUANTIFIERS + (["{1,2}+", "{2}+"] if dialect == "oniguruma" else []))

    def extend(children):
        return st.one_of(
            st.tuples(children, children).map("".join),
            st.tuples(children, children).map(lambda pair: f"(?:{pair[0]}|{pair[1]})"),
            st.tuples(children, quantifiers).map(lambda pair: f"(?:{pair[0]}){pair[1]}"),
            st.tuples(st.sampled_from(_ATOMS), quantifiers).map("".join),
            children.map(lambda child: f"(?={child})"),
            children.map(lambda child: f"(?!{child})"),
            children.map(lambda child: f"(?>{child})"),
        )

    tree = st.recursive(leaves, extend, max_leaves=6)
    return st.lists(tree, min_size=1, max_size=3).map("|".join)


_texts = st.text(alphabet="ab 1'\nA\u00e9\u4e2dB", max_size=14)
# What a random pattern may legitimately hit; anything else refused is a failure.
_EXPECTED_REFUSALS = ("can match the empty string", "a quantifier on an assertion or lookahead", "stacked quantifiers")


def _compile_or_skip(pattern: str, dialect: str):
    try:
        return compile_splitter(pattern, dialect=dialect)
    except ModelFormatError as exc:
        assert any(reason in str(exc) for reason in _EXPECTED_REFUSALS), str(exc)
        assume(False)


@settings(max_examples=400, deadline=None)
@given(pattern=_patterns("python-regex"), texts=st.lists(_texts, min_size=1, max_size=4))
def test_random_patterns_python_regex(pattern, texts):
    try:
        regex.compile(pattern)
    except regex.error:
        assume(False)
    splitter = _compile_or_skip(pattern, "python-regex")
    for text in texts:
        assert splitter.findall(text) == regex_findall(pattern, text), (pattern, text)
        assert splitter.split_isolated(text) == regex_isolated(pattern, text), (pattern, text)


@settings(max_examples=300, deadline=None)
@given(pattern=_patterns("oniguruma"), texts=st.lists(_texts, min_size=1, max_size=4))
def test_random_patterns_oniguruma(pattern, texts):
    try:
        hf_isolated([pattern], "")
    except Exception:  # tokenizers refuses it
        assume(False)
    splitter = _compile_or_skip(pattern, "oniguruma")
    for text in texts:
        assert splitter.split_isolated(text) == hf_isolated([pattern], text), (pattern, text)


@pytest.mark.parametrize("pattern, text", [("\n^", "1\n"), ("^", "a\nb\n"), ("^\n?", "\n\n")])
def test_oniguruma_line_start_is_not_after_a_final_newline(pattern, text):
    """Oniguruma's ^ matches after every newline but the text's last character (hypothesis found "\\\n^")."""
    assert _compile_or_skip(pattern, "oniguruma").split_isolated(text) == hf_isolated([pattern], text)


# ---- where the dialects differ (each side held to its own reference) -----------------------------------

_DIALECT_CASES = [
    (r"\s+$", "x  \n  y  \n"),           # python: end or before a final newline; Oniguruma: any line end
    (r"^\w+", "ab\ncd\n"),              # python: text start; Oniguruma: line start
    (r"a\Z", "a\na\n"),
    (r"\p{N}{1,3}+", "1234567 12"),      # python: possessive {1,3}; Oniguruma: (?:\p{N}{1,3})+
    (r"a{2}+", "aaaaa"),
    (r"[^\r\n\p{L}\p{N}]?+\p{L}+", "  ab !c"),  # possessive in both
    (r"a++a|a", "aaa"),
    (r"|ab", "ab"),                      # empty matches: python retries with them forbidden, Oniguruma skips
    (r"a*", "baa"),
    (r"\b|a", "a a"),
    (r"(?=a)|ab", "ab"),
    (r"\w+", "a\u00b2\u200db"),          # the \w tables
]


@pytest.mark.parametrize("pattern, text", _DIALECT_CASES)
def test_dialects_follow_their_references(pattern, text):
    python = compile_splitter(pattern)
    assert python.findall(text) == regex_findall(pattern, text)
    assert python.split_isolated(text) == regex_isolated(pattern, text)
    assert compile_splitter(pattern, dialect="oniguruma").split_isolated(text) == hf_isolated([pattern], text)


def test_dialect_differences_are_real():
    # Where the references disagree on the cases above (the others are there because a wrong dialect rule
    # would break them: possession, empty matches that happen to agree).
    differing = {p for p, t in _DIALECT_CASES if regex_isolated(p, t) != hf_isolated([p], t)}
    assert differing == {r"\s+$", r"^\w+", r"a\Z", r"\p{N}{1,3}+", r"a{2}+", r"|ab", r"\w+"}
    assert compile_splitter(r"a\z", dialect="oniguruma").split_isolated("a\na") == ["a\n", "a"]


def test_findall_keeps_empty_matches_like_finditer():
    assert compile_splitter(r"a*").findall("baa") == ["", "aa", ""] == regex_findall(r"a*", "baa")
    assert compile_splitter(r"|a").findall("a") == ["", "a", ""]


# ---- chains ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "stages, text",
    [
        ((r"\p{N}{1,3}", r" ?\p{L}+"), "ab 12340 cd"),
        ((r"\s+", r"^\S"), "ab cd\nef"),          # anchors see each piece as a whole text
        ((r"[a-z]+", r"(?=b)|c$", r"x|"), "abc abcb"),
        ((r"\d", r"\d", r"\d"), "a1b22c333"),
    ],
)
def test_chains_follow_sequences_of_splits(stages, text):
    chain = SplitterChain([compile_splitter(stage, dialect="oniguruma") for stage in stages])
    assert chain.split(text) == hf_isolated(stages, text)


def test_chain_limits():
    splitter = compile_splitter("a")
    with pytest.raises(ValueError, match="1 to 8"):
        SplitterChain([])
    with pytest.raises(ValueError, match="1 to 8"):
        SplitterChain([splitter] * 9)
    with pytest.raises(ValueError, match="mode"):
        SplitterChain([splitter], mode="removed")
    assert SplitterChain([splitter], mode="findall").split("bab") == ["a"]


# ---- what is refused, by name --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "pattern, dialect, named",
    [
        (r"(?<=a)b", "python-regex", "lookbehind"),
        (r"(?<!a)b", "oniguruma", "lookbehind"),
        (r"(a)\1", "python-regex", "backreference"),
        (r"\p{Han}+", "python-regex", "\\p{Han}"),
        (r"\p{Greek}", "oniguruma", "\\p{Greek}"),
        (r"[[a]]", "python-regex", "nested classes"),
        (r"[a&&b]", "oniguruma", "intersection"),
        (r"[[:alpha:]]", "oniguruma", "POSIX"),
        (r"(?m)^a", "python-regex", "(?m"),
        (r"(?s).", "oniguruma", "(?s"),
        (r"a(?i)b", "python-regex", "(?i"),
        (r"\Ga", "python-regex", "\\G"),
        (r"a\Kb", "oniguruma", "\\K"),
        (r"\R", "oniguruma", "\\R"),
        (r"\X", "python-regex", "\\X"),
        (r"\h", "oniguruma", "\\h"),
        (r"a\z", "python-regex", "\\z"),
        (r"\x{41}", "python-regex", "\\x{...}"),
        (r"\pL", "oniguruma", "\\p without braces"),
        (r"a{,}", "python-regex", "'{,}'"),
        (r"a**", "python-regex", "stacked quantifiers"),
        (r"a{1,2}+?", "oniguruma", "stacked"),
        (r"(?:a?)*", "python-regex", "empty string"),
        (r"(?:a|)+b", "oniguruma", "empty string"),
        (r"(?=a)*", "python-regex", "quantifier on an assertion"),
        (r"(?i:ss)", "oniguruma", "'ss'"),
        (r"(?i)ST", "oniguruma", "'st'"),
        (r"(?i:\u00e9)", "oniguruma", "non-ASCII"),
        (r"(?i:\p{Lu})", "python-regex", "\\p{Lu} under (?i)"),
        (r"a{100001}", "python-regex", "repeat count"),
        (r"(?:(?:(?:ab){100}){100}){100}", "python-regex", "program of more than"),
        ("(?=" * 40 + "a" + ")" * 40, "python-regex", "nested more than"),
        ("\ud800", "python-regex", "surrogate"),
        (r"(ab", "python-regex", "missing ')'"),
        (r"ab)", "oniguruma", "unbalanced ')'"),
        (r"[ab", "python-regex", "missing ']'"),
        (r"*a", "python-regex", "nothing to repeat"),
        ("a\\", "python-regex", "trailing backslash"),
        (r"[z-a]", "python-regex", "out of order"),
        (r"\xZZ", "python-regex", "hexadecimal"),
    ],
)
def test_refusals_name_the_construct(pattern, dialect, named):
    with pytest.raises(ModelFormatError) as raised:
        compile_splitter(pattern, dialect=dialect)
    message = str(raised.value)
    assert named in message and dialect in message, message


def test_bad_arguments():
    with pytest.raises(ValueError, match="dialect"):
        compile_splitter("a", dialect="pcre")
    with pytest.raises(TypeError):
        compile_splitter(b"a")


# ---- malformed programs never crash the native side ------------------------------------------------------


def _words(values) -> bytes:
    return array.array("I", values).tobytes()


def test_malformed_programs_are_value_errors():
    good = _words([2, ord("a"), 0])  # CHAR 'a'; MATCH
    assert _native.PieceSplitter([(_native.SplitProgram(good, b"", dialect="python-regex", n_slots=0, n_memo=0),
                                   "findall")]).split("bab") == ["a"]
    bad_programs = [
        _words([4, 7, 0]),                # JMP out of range
        _words([2, ord("a")]),            # does not end in MATCH
        _words([99, 0]),                  # unknown opcode
        _words([3, 5, 0]),                # CLASS beyond the class table
        _words([5, 3, 3, 0xFFFFFFFF, 0, 0]),  # SPLIT with a memo point it does not have
        _words([6, 0, 2, 1, 0, 0, 0, 0]),  # RUN with min > max and no classes
        _words([4, 1, 0]),                # JMP into the middle of an instruction
        b"\x01\x02\x03",                  # not whole words
    ]
    for code in bad_programs:
        with pytest.raises(ValueError):
            _native.SplitProgram(code, b"", dialect="python-regex", n_slots=0, n_memo=0)
    with pytest.raises(ValueError, match="class table"):
        _native.SplitProgram(good, _words([0] * 9), dialect="python-regex", n_slots=0, n_memo=0)
    with pytest.raises(ValueError, match="dialect"):
        _native.SplitProgram(good, b"", dialect="pcre", n_slots=0, n_memo=0)


def test_piece_splitter_arguments():
    with pytest.raises(ValueError, match="built-in scanner"):
        _native.PieceSplitter([("nope", "findall")])
    with pytest.raises(ValueError, match="mode"):
        _native.PieceSplitter([("cl100k", "removed")])
    with pytest.raises(TypeError):
        _native.PieceSplitter([("cl100k",)])
    with pytest.raises(ValueError, match="1 to"):
        _native.PieceSplitter([])
    splitter = _native.PieceSplitter([("cl100k", "isolated")])
    with pytest.raises(UnicodeEncodeError):
        splitter.split("a\ud800b")
    with pytest.raises(TypeError):
        splitter.split(b"abc")
