"""literal_alternation: the trie pattern finds exactly what the longest-first alternation of the same strings
finds (the pattern tokend used before, and what Hugging Face's and tiktoken's special-token matching
means), and its cost per offset does not grow with the number of strings (issue 13: 1,091 harmony special
tokens made each "<|" cost ~1,000 attempts; 20,000 added tokens sharing "aa" ~50 µs a character).

The oracle here is `regex`'s longest-first alternation, independent of `re` and of the trie; the
families' own references (tiktoken, tokenizers) check the same matching through the encodings in
test_openai_encodings.py, test_special_tokens.py and test_hf_tokenizer_json.py."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.engine.test_openai_encodings import ours
from tokend.engine.added_tokens import AddedToken, AddedTokenMatcher
from tokend.engine import literal_alternation as literal_alternation_module
from tokend.engine.literal_alternation import MAX_NESTING, MAX_STRING_CHARS, check_literal_set, literal_alternation
from tokend.errors import ModelFormatError


def _oracle(strings: set[str]) -> regex.Pattern:
    ordered = sorted(strings, key=lambda s: (-len(s), s))
    return regex.compile("|".join(map(regex.escape, ordered)))


def _matches(pattern, text: str) -> list[tuple[int, int]]:
    return [m.span() for m in pattern.finditer(text)]


_ALPHABET = "ab<|>\\.*()[]?é\u0301😀"


@settings(max_examples=400, deadline=None)
@given(strings=st.sets(st.text(_ALPHABET, max_size=8), min_size=1, max_size=40),
       text=st.text(_ALPHABET, max_size=80))
def test_the_trie_finds_what_the_longest_first_alternation_finds(strings, text):
    assert _matches(re.compile(literal_alternation(strings)), text) == _matches(_oracle(strings), text)


def test_strings_nested_deeper_than_the_group_limit_still_match_as_the_alternation():
    chain = {"a" * n for n in range(1, 3 * MAX_NESTING)} | {"a" * n + "b" for n in range(1, 3 * MAX_NESTING, 7)}
    pattern = re.compile(literal_alternation(chain))  # nested 190 deep as groups: `re` would hit its recursion limit
    for text in ("a" * 500, "a" * 100 + "b" + "a" * 30, "ab" * 50, "a" * (3 * MAX_NESTING - 1) + "b"):
        assert _matches(pattern, text) == _matches(_oracle(chain), text)


# Characters that mean something inside a class ("-", "^", "]", "\\") and several past U+FFFF apart.
_RANGE_ALPHABET = _ALPHABET + "-^c\U0001F680\U0001F642\U0001F90D"


@settings(max_examples=400, deadline=None)
@given(strings=st.sets(st.text(_RANGE_ALPHABET, max_size=6), min_size=1, max_size=40),
       text=st.text(_RANGE_ALPHABET, max_size=80))
def test_nodes_split_into_ranges_find_what_the_longest_first_alternation_finds(strings, text):
    """Nodes of more than MAX_FAN_OUT next characters become range groups (and, at the top, a class of the first
    characters); with a fan-out limit of 2 and a nesting limit of 4 every rule is exercised on small sets."""
    with mock.patch.object(literal_alternation_module, "MAX_FAN_OUT", 2), \
            mock.patch.object(literal_alternation_module, "MAX_NESTING", 4):
        pattern = re.compile(literal_alternation(strings))
    assert _matches(pattern, text) == _matches(_oracle(strings), text)


@pytest.mark.parametrize("base", [0x4E00, 0x20000], ids=["bmp", "astral"])
def test_a_node_of_thousands_of_next_characters_costs_a_few_tests_an_offset_not_one_per_branch(base):
    """20,000 added tokens with 20,000 distinct first characters (a crafted tokenizer.json): `re` tried the
    branches one after another, ~40 us a character of text made of those characters (200 KB: ~8 s); and with
    first characters past U+FFFF, which `re` holds as a list, any other text cost ~9 us a character (1.8 s).
    Generous bound, the point is the order of growth."""
    firsts = [chr(base + 2 * n) for n in range(20_000)]
    matcher = AddedTokenMatcher([AddedToken(first + "x", 1000 + n, special=False) for n, first in enumerate(firsts)])
    crafted = "".join(firsts[n * 7 % 20_000] for n in range(200_000))
    ordinary = "ordinary text, " * 13_000 + firsts[19_999] + "x" + firsts[5] + "xx"
    started = time.process_time()
    assert matcher.split(crafted, active=lambda token: True) == [crafted]
    assert matcher.split(ordinary, active=lambda token: True) == ["ordinary text, " * 13_000, 20_999, 1005, "x"]
    assert time.process_time() - started < 2.0


def test_the_load_check_takes_what_the_trie_bounds_and_refuses_the_rest():
    check_literal_set(["x" * MAX_STRING_CHARS, "<|end|>", *("a" * n for n in range(1, MAX_NESTING + 1))])
    check_literal_set([chr(0x4E00 + n) + "x" for n in range(20_000)])  # range groups: two levels
    with pytest.raises(ValueError, match="has 257 characters; at most 256"):
        check_literal_set(["x" * (MAX_STRING_CHARS + 1)])
    with pytest.raises(ValueError, match="more than 64 groups deep"):
        check_literal_set(["a" * n for n in range(1, MAX_NESTING + 2)])
    branching = ["a" * k + "c" for k in range(MAX_NESTING - 1)]  # a group at each of the first 63 depths
    check_literal_set(branching + ["a" * MAX_NESTING + chr(0x4E00 + n) for n in range(32)])
    with pytest.raises(ValueError, match="more than 64 groups deep"):  # the 64th node's 2,000 children: 2 range levels
        check_literal_set(branching + ["a" * MAX_NESTING + chr(0x4E00 + n) for n in range(2_000)])


def _toy_ranks() -> dict[bytes, int]:
    return {bytes([byte]): byte for byte in range(256)}


@pytest.mark.parametrize("tokens, message", [
    # each offset of "aaa..." walked as deep as the text follows a token: 1.2-1.5 ms a character (5 KB: 6-7 s)
    ({"a" * k + "c": 1000 + k for k in range(2_000)}, "has 2,000 characters; at most 256"),
    # branching past the nesting cap, then 20,000 strings sharing "a": the cap's alternation, 154 us a character
    ({**{"a" * k + "c": 1000 + k for k in range(70)}, **{"a" * 66 + chr(0x4E00 + n): 2000 + n for n in range(20_000)}},
     "more than 64 groups deep"),
], ids=["long", "deep"])
def test_special_tokens_that_would_cost_each_offset_unbounded_steps_are_refused_at_load(tokens, message):
    """Crafted files (issue 13): the models' special and added tokens are held to what the trie pattern bounds
    (the real ones: 30 characters at most, 15 next characters a node), refused when the encoding is built."""
    from tokend import Encoding
    from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceEncoding, SentencePieceModel

    with pytest.raises(ModelFormatError, match=message):
        Encoding("crafted", pat_str=r"\w+|\W", mergeable_ranks=_toy_ranks(), special_tokens=tokens)
    pieces = ("<unk>", "a", "\u2581", *tokens)
    types = (PieceType.UNKNOWN, PieceType.NORMAL, PieceType.NORMAL) + (PieceType.CONTROL,) * len(tokens)
    model = SentencePieceModel(pieces=pieces, scores=(0.0,) * len(pieces), types=types, normalizer=NormalizerSpec(name="identity"))
    with pytest.raises(ModelFormatError, match=message):
        SentencePieceEncoding(name="crafted", model=model)


def test_an_empty_set_is_refused():
    with pytest.raises(ValueError, match="at least one"):
        literal_alternation([])


def test_special_tokens_sharing_a_prefix_cost_a_few_steps_an_offset_not_one_per_token():
    """o200k_harmony's 1,091 special tokens all start with "<|": the default (disallowed "all") check of
    2 MB of "<|" took ~5 s before; generous bound, the point is the order of growth."""
    harmony = ours("o200k_harmony")
    text = "<|" * 1_000_000
    started = time.process_time()
    assert len(harmony.encode(text, disallowed_special=())) == harmony.count(text)
    assert len(harmony.encode(text, allowed_special="all")) == len(harmony.encode(text, disallowed_special=()))
    assert time.process_time() - started < 2.0


def test_added_tokens_sharing_a_prefix_cost_a_few_steps_an_offset_not_one_per_token():
    """20,000 non-special added tokens "aa00000".."aa19999" (a crafted tokenizer.json): a count of 200 KB
    of "a" cost ~10 s of a worker before; and the matches are still every token where it occurs."""
    tokens = [AddedToken(f"aa{n:05d}", 1000 + n, special=False) for n in range(20_000)]
    matcher = AddedTokenMatcher(tokens)
    started = time.process_time()
    assert matcher.split("a" * 200_000, active=lambda token: True) == ["a" * 200_000]
    assert time.process_time() - started < 2.0
    assert matcher.split("xaa12345aa1234aa00000", active=lambda token: True) == ["x", 13345, "aa1234", 1000]


def test_many_control_pieces_allowed_cost_one_pass_not_one_per_piece():
    """A SentencePiece model of 20,000 control pieces "<a00000>".."<a19999>" with allowed_special="all":
    each piece was searched for in the text on its own (2 s for 200 KB of "<a"; 8 MiB: ~90 s)."""
    from tokend.engine.sentencepiece import NormalizerSpec, PieceType, SentencePieceEncoding, SentencePieceModel

    controls = [f"<a{n:05d}>" for n in range(20_000)]
    pieces = ["<unk>", "<s>", "</s>", "a", "\u2581", "<", *controls]
    types = [PieceType.UNKNOWN, PieceType.CONTROL, PieceType.CONTROL] + [PieceType.NORMAL] * 3 + [PieceType.CONTROL] * len(controls)
    model = SentencePieceModel(pieces=tuple(pieces), scores=(0.0,) * len(pieces), types=tuple(types),
                               normalizer=NormalizerSpec(name="identity"))
    encoding = SentencePieceEncoding(name="controls", model=model)
    text = "<a" * 100_000
    started = time.process_time()
    assert encoding.count(text, allowed_special="all") == encoding.count(text, disallowed_special=())
    assert time.process_time() - started < 1.0
    assert encoding.encode("x<a00042>y", allowed_special="all")[1:-1].count(6 + 42) == 1
