"""PrefixScan (the first test before looking for special and added tokens) is `any(s in text)`, whichever
way it takes: first characters one at a time, many occurrences of one, many first characters, "" among them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
