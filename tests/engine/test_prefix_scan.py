"""PrefixScan (the first test before looking for special and added tokens) is `any(s in text)`, whichever
way it takes: first characters one at a time, many occurrences of one, many first characters, "" among them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.engine._native import contains_any
from tokend.engine.prefix_scan import PrefixScan

_ALPHABET = "<|/[]tIa \u00e9\U0001f600"


@settings(max_examples=300, deadline=None)
@given(strings=st.lists(st.text(_ALPHABET, max_size=3), max_size=7), text=st.text(_ALPHABET, max_size=200))
def test_found_in_is_any_string_in_the_text(strings, text):
    assert PrefixScan(strings).found_in(text) == any(string in text for string in strings)


def test_a_first_character_that_occurs_often_still_finds_a_late_string():
    scan = PrefixScan(["<|", "</"])
    assert scan.found_in("<a>" * 50 + "</b>")
    assert not scan.found_in("<a>" * 50)
    assert PrefixScan(["ab", "cd", "ef", "gh", "ij"]).found_in("x" * 100 + "ij")  # five first characters: a regex
    assert PrefixScan([""]).found_in("anything") and not PrefixScan([]).found_in("anything")


# The native scan (service/native/text_find.c) takes 16 bytes of starts a step (16, 8 or 4 characters by the
# str's kind), looking for every group's first two characters at once, then one start at a time.
_NARROW = "<|ab \u00e9\u00ff"  # ASCII and Latin-1: CPython's one-byte kind


# one alphabet a kind: 1, 2 and 4 bytes a character (the text's widest character decides)
_KINDS = (_NARROW, _NARROW + "\u0100\u65e5", _NARROW + "\u65e5\U0001f600")


@settings(max_examples=600, deadline=None)
@given(data=st.data(), alphabet=st.sampled_from(_KINDS))
def test_the_native_scan_is_any_string_in_the_text_in_every_kind(data, alphabet):
    strings = data.draw(st.lists(st.text(_KINDS[-1], max_size=4), max_size=8))
    text = data.draw(st.text(alphabet, max_size=120))
    assert contains_any(text, tuple(strings)) == any(string in text for string in strings)


def test_the_native_scan_finds_a_string_at_every_place_of_a_step_and_at_the_end():
    for size in range(0, 70):
        for at in range(0, size + 1):
            for needle in ("<|", "<", "<|x", "\u00e9<"):
                for filler in ("a", "\u65e5", "\U0001f600"):  # each kind
                    text = "<" * at + needle + filler * (size - at)  # "<" everywhere before it: dense
                    assert contains_any(text, (needle,)), (size, at, needle, filler)
                    assert contains_any(text[:-1], (needle,)) == (needle in text[:-1]), (size, at, needle, filler)
    assert not contains_any("<" * 100, ("<|",)) and contains_any("<" * 100 + "|", ("<|",))
    assert not contains_any("abc", ("\u0100",)) and not contains_any("abc", ("abcd",))
    assert contains_any("日本<|", ("<|",)) and not contains_any("日本<", ("<|",))  # two-byte kind
    assert contains_any("\U0001f600<|", ("<|",)) and contains_any("x", ("",)) and not contains_any("x", ())


def test_the_native_scan_refuses_what_is_not_a_str_and_a_tuple_of_str():
    for args in (("text", ["<|"]), (b"text", ("<|",)), ("text", ("<|", 1)), ("text", ("", 1)), ("text", ("t", b"x"))):
        try:
            contains_any(*args)
        except TypeError:
            continue
        raise AssertionError(f"accepted {args!r}")  # every item checked before any answer


def test_encode_of_what_is_not_a_str_names_the_text():
    from tokend import get_encoding

    for call in (get_encoding("cl100k_base").encode, get_encoding("cl100k_base").count):
        try:
            call(b"abc")
        except TypeError as exc:
            assert "text" in str(exc) and "bytes" in str(exc), exc
        else:
            raise AssertionError("bytes accepted")


def test_more_strings_than_the_native_scan_takes_give_the_same_answer():
    strings = [f"<{letter}" for letter in "abcdefghijkl"]  # 12 strings: found in Python
    assert PrefixScan(strings).found_in("x" * 50 + "<l") and not PrefixScan(strings).found_in("x<" * 50)


@settings(max_examples=400, deadline=None)
@given(data=st.data(), alphabet=st.sampled_from(_KINDS))
def test_strings_that_share_their_first_two_characters_are_found_in_one_pass(data, alphabet):
    # many strings over few first pairs: groups of several strings, each compared where its pair occurs
    heads = data.draw(st.lists(st.text(_KINDS[-1], min_size=1, max_size=2), min_size=1, max_size=3))
    strings = data.draw(st.lists(st.tuples(st.sampled_from(heads), st.text(_KINDS[-1], max_size=3)).map("".join),
                                 max_size=40))
    text = data.draw(st.text(alphabet, max_size=150))
    assert contains_any(text, tuple(strings)) == any(string in text for string in strings)
    assert PrefixScan(strings).found_in(text) == any(string in text for string in strings)


def test_a_model_s_added_tokens_are_looked_for_whole_where_the_native_scan_takes_them():
    # Qwen 3's 26 added tokens share 3 first pairs; code holds "</" and "<t" without holding a token
    from tokend.engine.added_tokens import AddedToken, AddedTokenMatcher

    contents = [f"<|{name}|>" for name in ("endoftext", "im_start", "im_end", "fim_prefix", "fim_middle", "fim_suffix",
                                           "fim_pad", "repo_name", "file_sep", "object_ref_start", "object_ref_end",
                                           "box_start", "box_end", "quad_start", "quad_end", "vision_start",
                                           "vision_end", "vision_pad", "image_pad", "video_pad")]
    contents += ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
    tokens = AddedTokenMatcher([AddedToken(content=content, id=i) for i, content in enumerate(contents)])
    assert PrefixScan(contents).native
    code = "<table><tr><td>x</td></tr></table> <T> a <| b"
    assert not tokens.may_occur(code) and tokens.split(code, active=lambda token: True) == [code]
    for content in contents:
        assert tokens.may_occur(code + content)
        assert tokens.split(code + content, active=lambda token: True) == [code, contents.index(content)]
    many = [f"<|x{i}|>" for i in range(40)]  # one pair, 40 strings: prefixes first, in Python
    assert not PrefixScan(many).native and PrefixScan(many).found_in("a <|x39|>") and not PrefixScan(many).found_in("<|x")


def test_groups_found_in_one_pass_at_every_place_of_a_step_in_every_kind():
    # text_find.c looks for all groups in one pass: the groups' heads compared 16 bytes a step, and where every
    # group begins with one character, 64 bytes a step for that character alone first; near misses everywhere
    sets = (("<|x", "</y", "<tz"),  # three groups, one first character (Qwen's added tokens' shape): 64-byte steps
            ("<|x", "</y", "<tz", "<az", "<bz"),  # five seconds: two heads of one first character
            ("<|x", "[Iy", "\u00e9"),  # first characters of their own, a single character among them
            ("\u65e5<", "<\U0001f600"))  # needles wider than a one-byte text: never found there
    for needles in sets:
        for filler in ("a", "\u0101", "\U0001f601"):  # each kind of str
            for size in (0, 15, 16, 17, 63, 64, 65, 66, 130, 200):
                for at in range(size + 1):
                    for needle in needles:
                        text = filler * at + needle + filler * (size - at)
                        misses = "<" + filler + "<|" + filler + "</" + filler + "[I" + filler
                        for whole in (text, misses * (at % 3) + text + misses):
                            assert contains_any(whole, needles) == any(n in whole for n in needles), (needles, size, at)
                    near = filler * at + "<|" + filler + "</" + filler * (size - at)
                    assert contains_any(near, needles) == any(n in near for n in needles), (needles, size, at)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), alphabet=st.sampled_from(_KINDS))
def test_more_groups_than_one_pass_takes_give_the_same_answer(data, alphabet):
    # the core's scan takes 8 groups a pass; more (contains_any takes any tuple) make more passes
    heads = [f"<{c}" for c in "abcdefghij|"] + ["x", "\u00e9"]
    strings = data.draw(st.lists(st.tuples(st.sampled_from(heads), st.text("ab|<", max_size=2)).map("".join),
                                 max_size=30))
    text = data.draw(st.text(alphabet + "<|ghij", max_size=200))
    assert contains_any(text, tuple(sorted(strings))) == any(string in text for string in strings)
    assert contains_any(text, tuple(strings)) == any(string in text for string in strings)
