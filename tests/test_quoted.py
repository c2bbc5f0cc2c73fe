"""tokend.errors.quoted: a caller's value quoted in an error message, cut short, at a cost that does not grow
with the value (the playground passes `side`, `prefer` and a chat message's role or part type through as the JSON
body gave them: a string, or an array or object holding one, of up to ~48 MB)."""

from __future__ import annotations

import tracemalloc

import pytest

import tokend
from tokend.errors import InvalidBudgetError, quoted

_LONG = "q" * 5_000_000


def _peak_bytes(call) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("value", [_LONG, [_LONG], {"k": _LONG}, (_LONG, 1), [["q" * 1_000] * 3] * 2_000],
                         ids=["string", "array", "object", "tuple", "many-arrays"])
def test_a_long_value_is_quoted_without_a_copy_of_it(value):
    # repr() of the whole value, then the cut: a copy of the string (twice inside an array) per error, eight
    # requests at once in the playground's places
    text, peak = _peak_bytes(lambda: quoted(value))
    assert len(text) < 200 and peak < 100_000, (len(text), peak)


def test_a_long_side_is_refused_without_a_copy_of_it():
    encoding = tokend.get_encoding("cl100k_base")

    def truncate():
        with pytest.raises(InvalidBudgetError) as refused:
            encoding.truncate("x", 1, side=[_LONG])
        return str(refused.value)

    message, peak = _peak_bytes(truncate)
    assert len(message) < 400 and peak < 1_000_000, (len(message), peak)


def test_short_values_are_quoted_as_repr_gives_them():
    assert quoted("user") == "'user'" and quoted(3) == "3" and quoted(None) == "None" and quoted(["a"]) == "['a']"
    assert quoted("r" * 3000) == repr("r" * 3000)[:100] + "… (3,000 characters in all)"
