"""The Unicode tables are part of the tokenizer: `\\p{L}` / `\\p{N}` in the split patterns decide where text
is cut. tiktoken's regex uses Unicode 16; the `regex` module moved to Unicode 17 in 2025.10 and then split
letters assigned since differently (found by tests/reliability/test_fuzz.py). service/pyproject.toml pins
`regex` to its Unicode 16 releases; these cases fail when that pin is lost."""

from __future__ import annotations

import pytest

# A letter assigned in each recent Unicode version, and code points unassigned in Unicode 16, each
# followed by ":A" — letter or not changes whether ":" joins the piece before it.
CODE_POINTS = {
    "Toto (14.0)": "\U0001e290",
    "Kawi (15.0)": "\U00011f04",
    "CJK Extension I (15.1)": "\U0002ebf0",
    "Garay (16.0)": "\U00010d4a",
    "Cyrillic TJE (16.0)": "\u1c89",
    "CJK Extension J (17.0)": "\U000323b0",
    "Beria Erfe (17.0)": "\U00016ea0",
    "unassigned U+3D000": "\U0003d000",
    "unassigned U+E0080": "\U000e0080",
}


@pytest.mark.parametrize("char", CODE_POINTS.values(), ids=CODE_POINTS.keys())
@pytest.mark.parametrize("context", ["{}:A", " {}{}1", "x{} y", "'{}s"])
def test_recently_assigned_and_unassigned_code_points_split_like_tiktoken(enc, oracle, char, context):
    text = context.format(char, char)
    assert enc.encode(text) == oracle.encode(text)
    assert enc.count(text) == len(oracle.encode(text))
