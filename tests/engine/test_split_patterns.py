"""Every recorded split pattern, split natively, against its reference: `regex.finditer` for the
python-regex dialect, Hugging Face `tokenizers` Split(Isolated) (a Sequence of them for a chain) for the
oniguruma dialect. Both native paths are checked: the general matcher (`use_builtin=False`) and, where
one exists, the hand-written scanner.

    >>> compile_splitter(LLAMA3_PATTERN, dialect="oniguruma").split_isolated("I'LL  go\\n") == hf_isolated([LLAMA3_PATTERN], "I'LL  go\\n")
    True

Inputs: every code point in class-separating templates (plane 0 for the new scanners; in the slow tier
every assigned plane for every family and plane 0 for every other pattern), hypothesis text biased toward
the characters where these patterns are subtle, the corpus, and edge cases. (Each class's table is checked
on every code point of Unicode by test_split_classes.py.) The pattern strings themselves are checked against their
sources where those ship in packages (tiktoken, mistral-common, llama-cpp-python's sdist).
"""

from __future__ import annotations

import ast
import json
import re
import string
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.corpus import corpus_texts, edge_cases
from tests.engine._split_oracles import CLASS_TEMPLATES, first_difference, hf_isolated, regex_findall, sweep_chunks
from tests.support.package_files import pypi_file
from tokend.engine import patterns
from tokend.engine.patterns import LLAMA3_PATTERN, LLAMA_CPP_PRE_TOKENIZERS, SPLIT_PATTERNS
from tokend.engine.splitting import SplitterChain, compile_splitter


@dataclass(frozen=True)
class Case:
    name: str
    patterns: tuple[str, ...]
    dialect: str  # python-regex: one pattern, findall vs regex; oniguruma: a chain, isolated vs tokenizers

    def reference(self, text: str) -> list[str]:
        if self.dialect == "python-regex":
            return regex_findall(self.patterns[0], text)
        return hf_isolated(self.patterns, text)

    def ours(self, *, use_builtin: bool):
        splitters = [compile_splitter(p, dialect=self.dialect, use_builtin=use_builtin) for p in self.patterns]
        if self.dialect == "python-regex":
            return splitters[0].findall, splitters[0].builtin
        builtins = [s.builtin for s in splitters if s.builtin]
        return SplitterChain(splitters).split, (builtins[0] if builtins else None)


def _cases() -> list[Case]:
    cases: dict[tuple, Case] = {}

    def add(name, pattern_tuple, dialect):
        cases.setdefault((pattern_tuple, dialect), Case(name, pattern_tuple, dialect))

    for name, spec in SPLIT_PATTERNS.items():
        add(name, spec.patterns, spec.dialect)
    for name, spec in SPLIT_PATTERNS.items():  # tokenizer.json patterns read by tiktoken-style tools too
        for index, pattern in enumerate(spec.patterns):
            add(f"{name}[{index}]-python", (pattern,), "python-regex")
    for name, pattern_list in LLAMA_CPP_PRE_TOKENIZERS.items():
        add(f"llama.cpp-{name}", pattern_list, "oniguruma")
        for index, pattern in enumerate(pattern_list):
            add(f"llama.cpp-{name}[{index}]-python", (pattern,), "python-regex")
    return list(cases.values())


CASES = _cases()
FAMILIES = [case for case in CASES if case.name in SPLIT_PATTERNS]
# Cases with a hand-written scanner, in their own dialect and in the other one.
SCANNED = [case for case in CASES if case.ours(use_builtin=True)[1] is not None]
# One case per scanner added for the open-model families (the first three have test_native_split.py),
# in the python-regex dialect, whose reference is the cheaper one.
NEW_SCANNERS = {"llama3", "qwen2", "llama3-ascii", "qwen2-ascii", "tekken", "deepseek-v3", "numbers3", "deepseek-cjk"}
QUICK_SCANNED = list({case.ours(use_builtin=True)[1]: case for case in SCANNED
                      if case.dialect == "python-regex" and case.ours(use_builtin=True)[1] in NEW_SCANNERS}.values())
OTHERS = [case for case in CASES if case not in FAMILIES]


def _assert_same(case: Case, texts, *, use_builtin_too: bool = True) -> None:
    implementations = [case.ours(use_builtin=False)]
    if use_builtin_too:
        scanned = case.ours(use_builtin=True)
        if scanned[1]:
            implementations.append(scanned)
    for text in texts:
        expected = case.reference(text)
        for split, builtin in implementations:
            pieces = split(text)
            if pieces != expected:
                pytest.fail(f"{case.name} ({builtin or 'general matcher'}) on {text[:120]!r}: "
                            f"{first_difference(pieces, expected)}")


def _assert_sweep(case: Case, template: str, planes) -> None:
    implementations = [case.ours(use_builtin=False), case.ours(use_builtin=True)]
    for chunk, code_points in sweep_chunks(template, planes):
        expected = case.reference(chunk)
        for split, builtin in implementations:
            pieces = split(chunk)
            if pieces != expected:
                pytest.fail(f"{case.name} ({builtin or 'general matcher'}), template {template!r}, code points "
                            f"U+{code_points[0]:04X}..U+{code_points[-1]:04X}: {first_difference(pieces, expected)}")


# ---- every code point ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", QUICK_SCANNED, ids=lambda case: case.name)
@pytest.mark.parametrize("template", CLASS_TEMPLATES, ids=["letters-digits-case", "punctuation-marks-cjk"])
def test_new_scanners_on_every_code_point_of_plane_0(case, template):
    _assert_sweep(case, template, [0])


def test_every_family_has_a_case_and_the_hot_ones_a_scanner():
    assert {case.ours(use_builtin=True)[1] for case in QUICK_SCANNED} == NEW_SCANNERS
    names = {case.name for case in SCANNED}
    assert {"llama3", "qwen2", "tekken", "hf-tekken", "hf-cl100k", "deepseek-v3", "cl100k_base", "o200k_base", "gpt2"} <= names
    assert len(FAMILIES) == len(SPLIT_PATTERNS)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in SCANNED if c not in FAMILIES and c not in QUICK_SCANNED],
                         ids=lambda case: case.name)
def test_every_scanned_case_on_every_code_point_of_plane_0(case):
    for template in CLASS_TEMPLATES:
        _assert_sweep(case, template, [0])


@pytest.mark.slow
@pytest.mark.parametrize("case", FAMILIES, ids=lambda case: case.name)
@pytest.mark.parametrize("template", CLASS_TEMPLATES, ids=["letters-digits-case", "punctuation-marks-cjk"])
def test_every_family_on_every_assigned_code_point(case, template):
    # Planes 0-3 and 14 hold every assigned character of Unicode 16. Against tokenizers (~3 us a piece)
    # planes 0 and 1 (every class; 2 and 3 are ideographs only, 14 tags and variation selectors, which
    # the python-regex sweeps and test_split_classes.py cover).
    planes = (0, 1, 2, 3, 14) if case.dialect == "python-regex" else (0, 1)
    _assert_sweep(case, template, planes)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in OTHERS if c.dialect == "python-regex" and c not in SCANNED],
                         ids=lambda case: case.name)
def test_every_other_pattern_on_every_code_point_of_plane_0(case):
    for template in CLASS_TEMPLATES:
        _assert_sweep(case, template, [0])


# ---- hypothesis text biased toward the subtle characters ----------------------------------------------

_WHITESPACE = ["\t", "\n", "\r", "\x0b", "\x0c", " ", "\x85", "\xa0", "\u1680", "\u2000", "\u2028", "\u2029", "\u3000"]
_SUBTLE = (
    list(string.ascii_letters + string.digits + string.punctuation)
    + ["'", "\u2019", "s", "S", "\u017f", "\u212a", "t", "T", "l", "L", "v", "V", "r", "R", "e", "E", "m", "d", "D"]
    + _WHITESPACE
    + ["\r\n", "'s", "'S", "'ll", "'Re", "'ve", "\u2019s", "\n\n", "  ", " \n", "\r\n\r\n"]
    + ["\u0301", "\u0903", "\u20dd", "\u02b0", "\u01c5", "\u00b5", "\u00c0", "\u00d7", "\u00f7", "\u00df", "\u1e9e"]
    + ["\u0663", "\uff11", "\u00b2", "\u2167", "\u2153", "123", "1234", "\u0661\u0662\u0663\u0664"]
    + ["\u4e00", "\u4e2d", "\u9fa5", "\u9fa6", "\u3040", "\u309f", "\u30a0", "\u30ff", "\u3002", "\uac00", "\ud7ff"]
    + ["\u0800", "\ud55c", "\u0e01", "\uff01", "\uff21", "\u201c", "\u00a7", "\u00ab", "$", "+", "<", "^", "`", "|", "~"]
    + ["\U0001f600", "\U0001f44d\U0001f3fd", "\u200d", "\u200c", "\ufe0f", "/", "//", "\u0130", "\u00a0", "\U00010400"]
)
_subtle_text = st.lists(
    st.one_of(st.sampled_from(_SUBTLE), st.sampled_from(_SUBTLE), st.characters(exclude_categories=("Cs",))),
    max_size=40,
).map("".join)


@settings(max_examples=200, deadline=None)
@given(text=_subtle_text)
def test_hypothesis_subtle_text_every_family(text):
    for case in FAMILIES:
        _assert_same(case, [text])


@settings(max_examples=50, deadline=None)
@given(text=st.text(st.characters(exclude_categories=("Cs",)), max_size=60))
def test_hypothesis_general_text_every_family(text):
    for case in FAMILIES:
        _assert_same(case, [text])


@pytest.mark.slow
@settings(max_examples=100, deadline=None)
@given(text=_subtle_text)
def test_hypothesis_subtle_text_every_other_case(text):
    for case in OTHERS:
        _assert_same(case, [text])


# ---- corpus and edge cases --------------------------------------------------------------------------------

def _valid(text: str) -> bool:
    return not any(0xD800 <= ord(char) < 0xE000 for char in text)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [text for text in corpus_texts(limit_bytes=30_000) if _valid(text)] + edge_cases()


_EDGE_TEXTS = (
    ["", "a", " ", "\n", "\r\n", "'", "'s", "1", "!", "\u3000", "\u0301", "\U0001f600", "\u4e00", "$"]
    + [f"word{end}" for end in (" ", "  ", "\n", "\r\n", " \n ", "\t", "\u3000", " \n", "\n\n", " \r\n \t")]
    + [f"!!{end}" for end in (" ", "\n", "\r\n", " \n ", "\n/")]
    + [" " * 3_000, "\n" * 3_000, " \n" * 1_500, "a" * 5_000, "A" * 5_000 + "a", "1" * 3_001, "!" * 2_000 + "\n\n",
       "\u2019s" * 500, "'s" * 500, "\u0301" * 2_000, "\u4e2d" * 3_000, "\U0001f600" * 2_000, "x" + " " * 500 + "y"]
)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_corpus_and_edge_cases(case, corpus):
    _assert_same(case, corpus + _EDGE_TEXTS)


# ---- the pattern strings against their sources -----------------------------------------------------------


def test_tiktoken_patterns_are_tiktokens():
    import tiktoken_ext.openai_public as openai_public

    assert patterns.GPT2_PATTERN == openai_public.r50k_pat_str
    # The other constructors download ranks: read their pattern strings from the source text instead.
    import inspect

    source = inspect.getsource(openai_public)
    cl100k = ast.literal_eval(re.search(r'"pat_str": (r""".*?""")', source[source.index("def cl100k_base"):]).group(1))
    assert patterns.GPT4_PATTERN == cl100k
    o200k_parts = re.findall(r'(r""".*?"""),', source[source.index("def o200k_base") : source.index("def o200k_harmony")])
    assert patterns.O200K_PATTERN == "|".join(ast.literal_eval(part) for part in o200k_parts)


def test_tekken_pattern_is_mistral_commons():
    path = pypi_file("mistral-common", "1.13.1", "mistral_common/data/tekken_240718.json")
    with open(path, encoding="utf-8") as file:
        assert json.load(file)["config"]["pattern"] == patterns.TEKKEN_PATTERN


def _llama_cpp_lists() -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """llama-vocab.cpp's regex lists per LLAMA_VOCAB_PRE_TYPE and the `pre` names mapped to those types."""
    path = pypi_file("llama-cpp-python", "0.3.36", "vendor/llama.cpp/src/llama-vocab.cpp", sdist=True)
    source = path.read_text(encoding="utf-8")
    body = source[source.index("struct llm_tokenizer_bpe : llm_tokenizer {") :]
    body = body[: body.index("std::vector<std::string> regex_exprs;")]
    lists, pending = {}, []
    for match in re.finditer(r"case (LLAMA_VOCAB_PRE_TYPE_\w+):|regex_exprs = \{(.*?)\};", body, re.S):
        if match.group(1):
            pending.append(match.group(1))
            continue
        literals = []
        for line in match.group(2).split("\n"):
            line = line.strip()
            if line.startswith('"'):  # C++ and Python agree on the escapes used (\\ \" \r \n)
                literals += [ast.literal_eval('"' + body_ + '"') for body_ in re.findall(r'"((?:[^"\\]|\\.)*)"', line)]
        for pre_type in pending:
            lists[pre_type] = tuple(literals)
        pending = []
    names = {}
    chain = source[source.index('tokenizer_pre == "default"') :]
    for match in re.finditer(r'((?:tokenizer_pre == "[^"]+"\s*\|*\s*)+)\)\s*\{\s*pre_type = (LLAMA_VOCAB_PRE_TYPE_\w+);', chain):
        for name in re.findall(r'"([^"]+)"', match.group(1)):
            names[name] = match.group(2)
    return lists, names


def test_llama_cpp_lists_are_llama_cpps():
    lists, names = _llama_cpp_lists()
    for name, recorded in LLAMA_CPP_PRE_TOKENIZERS.items():
        assert lists[names[name]] == recorded, name
    assert LLAMA_CPP_PRE_TOKENIZERS["deepseek-v3"] == patterns.DEEPSEEK_V3_PATTERNS


def test_hand_checked_splits():
    # Checked by hand against the patterns, independently of both implementations.
    llama3 = compile_splitter(LLAMA3_PATTERN, dialect="oniguruma")
    assert llama3.split_isolated("I'LL  go 12345\n\n  x") == ["I", "'LL", " ", " go", " ", "123", "45", "\n\n", " ", " x"]
    deepseek = SplitterChain([compile_splitter(p, dialect="oniguruma") for p in patterns.DEEPSEEK_V3_PATTERNS])
    assert deepseek.split("ab 12345 中文x!") == ["ab", " ", "123", "45", " ", "中文", "x", "!"]
    tekken = compile_splitter(patterns.TEKKEN_PATTERN)
    assert tekken.findall("HTTPServer's 12") == ["HTTPServer", "'s", " ", "1", "2"]


def test_tokenizer_json_patterns_agree_with_two_published_sources():
    # No package ships Meta's or Qwen's tokenizer.json; two independent packages record their Split
    # regexes: quicktok-v1's importer (its exact-match table) and llama.cpp's "original regex from
    # tokenizer.json" comments.
    importer = pypi_file("quicktok-v1", "0.4.0", "quicktok/_import_core.py").read_text(encoding="utf-8")
    quicktok = {name: ast.literal_eval(literal) for name, literal in re.findall(r'^(\w+_PAT\w*) = (r""".*?""")$', importer, re.M)}
    assert quicktok["LLAMA3_PAT"] == patterns.LLAMA3_PATTERN
    assert quicktok["QWEN_PAT"] == patterns.QWEN2_PATTERN
    assert quicktok["TEKKEN_PAT"] == patterns.TEKKEN_PATTERN
    assert quicktok["O200K_PAT"] == patterns.O200K_PATTERN
    assert quicktok["CL100K_PAT_POSSESSIVE"] == patterns.CL100K_HF_PATTERN
    source = pypi_file("llama-cpp-python", "0.3.36", "vendor/llama.cpp/src/llama-vocab.cpp", sdist=True).read_text(encoding="utf-8")

    def original(pre_type: str) -> str:  # the first such comment after the case label
        after = source[source.index(f"case {pre_type}:") :][:4000]
        literal = re.search(r'original regex from tokenizer.json\s*//\s*"((?:[^"\\]|\\.)*)"', after).group(1)
        return ast.literal_eval('"' + literal + '"')

    originals = {name: original(f"LLAMA_VOCAB_PRE_TYPE_{name}") for name in ("LLAMA3", "QWEN2", "TEKKEN", "GPT4O")}
    assert originals["LLAMA3"] == patterns.LLAMA3_PATTERN
    assert originals["QWEN2"] == patterns.QWEN2_PATTERN
    assert originals["TEKKEN"] == patterns.TEKKEN_PATTERN
    assert originals["GPT4O"] == patterns.O200K_PATTERN


# Scanners whose pattern starts a piece at every character: the core runs Split(Isolated) on them as findall
# (no gaps to emit; pretokenize.c, tk_pattern_matches_everywhere). Every code point, alone and between
# letters, digits and spaces, must come back whole.
@pytest.mark.parametrize("scanner", ["gpt2", "cl100k", "o200k", "llama3", "qwen2", "tekken"])
def test_scanners_run_as_isolated_skip_no_character(scanner):
    from tokend.engine._native import PieceSplitter

    findall = PieceSplitter([(scanner, "findall")]).split
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and (c < 0x30000 or c % 97 == 0)]
    for context in ("{}", "a{}", "{}a", " {}1", "1{} ", "\n{}\t"):
        text = "".join(context.format(chr(c)) for c in code_points)
        assert "".join(findall(text)) == text, context


def test_a_scanned_pattern_spelled_otherwise_gets_its_scanner(corpus):
    # DeepSeek-V3's stages as tests/support writes them: `\u3040` and `\r\n` as regex escapes, `\"` for `"`.
    # Another string, the same syntax tree: the scanner runs it, and the pieces are still tokenizers'.
    from tests.support.tokenizer_json import DEEPSEEK_V3_PATTERNS as ESCAPED

    assert ESCAPED != patterns.DEEPSEEK_V3_PATTERNS
    for dialect in ("oniguruma", "python-regex"):
        assert [compile_splitter(p, dialect=dialect).builtin for p in ESCAPED] == ["numbers3", "deepseek-cjk", "deepseek-v3"]
    assert compile_splitter(r"\p{N}{1,2}", dialect="oniguruma").builtin is None  # another tree: no scanner
    _assert_same(Case("deepseek-v3-escaped", ESCAPED, "oniguruma"), corpus + _EDGE_TEXTS)


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from("aZ 1\u0663\u00b2\n\r\t!.,'\u65e5\u672c\u30a2\u30fb\u30fc\u309b\u0301\u00a0\u3000"
                                    "9\u4e00\u9fa5\u9fa6\u309f\u30a0\u30ff\U0001f600\x00-"), max_size=80))
def test_deepseek_v3_chain_in_one_pass_is_the_stage_iterator(text):
    # Its three scanner stages run as one pass (pretokenize.c, tk_deepseek_v3_next); the general matcher
    # runs the same chain through the stage iterator, and tokenizers is the reference for both.
    fused = SplitterChain([compile_splitter(p, dialect="oniguruma") for p in patterns.DEEPSEEK_V3_PATTERNS])
    general = SplitterChain([compile_splitter(p, dialect="oniguruma", use_builtin=False)
                             for p in patterns.DEEPSEEK_V3_PATTERNS])
    assert fused.split(text) == general.split(text) == hf_isolated(patterns.DEEPSEEK_V3_PATTERNS, text)
