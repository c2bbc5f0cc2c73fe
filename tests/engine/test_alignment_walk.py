"""The native alignment walk (tokend.engine._alignment, native/token_alignment.c) against its definition, written
out here in Python: per token, the characters and bytes it covers and the cut points, for texts with lone and
paired surrogates, multi-byte characters split between tokens, empty surfaces, lead surfaces, ids given as a
list or as a uint32 buffer, tables as a list or a SurfaceTable, and surfaces that depart from the text. The
walk runs without the GIL (test_native_gil.py) and stops at the call's stop (tokend.engine.call_stop)."""

from __future__ import annotations

import random
import time
from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tokend
from tokend.engine._alignment import SurfaceTable, align, prepare
from tokend.engine.call_stop import CallStop, CallStopped, stop_at
from tokend.engine.offsets import surface_table


def _repaired(text: str) -> list[tuple[int, int, bytes]]:
    """(str index, str width, UTF-8) of each character of `text` as the engine encodes it: a lone surrogate as
    U+FFFD, a high+low pair as the character it encodes."""
    characters, index = [], 0
    while index < len(text):
        code = ord(text[index])
        if 0xD800 <= code <= 0xDBFF and index + 1 < len(text) and 0xDC00 <= ord(text[index + 1]) <= 0xDFFF:
            joined = 0x10000 + ((code - 0xD800) << 10) + (ord(text[index + 1]) - 0xDC00)
            characters.append((index, 2, chr(joined).encode("utf-8")))
            index += 2
            continue
        character = "\ufffd" if 0xD800 <= code <= 0xDFFF else text[index]
        characters.append((index, 1, character.encode("utf-8")))
        index += 1
    return characters


def reference_align(text: str, surfaces: list[bytes | None], offsets: bool = True):
    """align's answer by its definition (the module docstring of offsets.py and token_alignment.c), as lists."""
    characters = _repaired(text)
    utf8 = b"".join(utf8 for _, _, utf8 in characters)
    containing, after, starting = [], [], {len(utf8): len(text)}  # byte -> str index of its character, past it
    for index, width, encoded in characters:
        starting[len(containing)] = index
        containing += [index] * len(encoded)
        after += [index + width] * len(encoded)
    columns: list[list[int]] = [[], [], [], []]
    cut_tokens, cut_chars = [0], [0]
    position = 0
    for token, surface in enumerate(surfaces):
        if surface is None or utf8[position : position + len(surface)] != surface:
            return token
        end = position + len(surface)
        columns[0].append(containing[position] if position < len(utf8) else len(text))
        columns[1].append(starting[end] if end in starting else after[end - 1])
        columns[2].append(position)
        columns[3].append(end)
        if end in starting:
            cut_tokens.append(token + 1)
            cut_chars.append(starting[end])
        position = end
    if position != len(utf8):
        return len(surfaces)
    return (columns if offsets else None), cut_tokens, cut_chars


def _native(answer, offsets: bool):
    if isinstance(answer, int):
        return answer
    lists = [list(memoryview(column).cast("I")) for column in answer]
    return (lists[:4] if offsets else None), lists[4], lists[5]


def _random_split(rng: random.Random, data: bytes) -> list[bytes]:
    """`data` cut at random places (inside characters too), with some empty pieces."""
    pieces, position = [], 0
    while position < len(data):
        size = rng.choice([0, 1, 1, 2, 3, 4, 5, 8])
        pieces.append(data[position : position + size])
        position += size
    return pieces


ALPHABET = ["a", " ", "\n", "é", "日", "🤖", "\u0301", "\ud83e", "\udd16", "\ud800", "\udfff", "\u200d", "<|endoftext|>"]


@pytest.mark.parametrize("seed", range(6))
def test_the_walk_is_its_definition_on_random_splits(seed):
    rng = random.Random(seed)
    for _ in range(300):
        text = "".join(rng.choices(ALPHABET, k=rng.randint(0, 40)))
        utf8 = b"".join(encoded for _, _, encoded in _repaired(text))
        surfaces = _random_split(rng, utf8)
        if surfaces and rng.random() < 0.3:  # one surface that departs, or a missing one, or too few
            damaged = rng.randrange(len(surfaces))
            surfaces[damaged] = rng.choice([None, b"\xff", surfaces[damaged] + b"x"])
        elif surfaces and rng.random() < 0.1:
            surfaces = surfaces[:-1]
        table = sorted({surface for surface in surfaces if surface is not None})
        ids = [table.index(surface) if surface is not None else len(table) + 7 for surface in surfaces]
        lead_count = rng.randint(0, min(3, len(surfaces)))
        lead = [surface if surface is not None else b"\xfe" for surface in surfaces[:lead_count]]
        expected_surfaces = lead + surfaces[lead_count:]
        for offsets in (True, False):
            expected = reference_align(text, expected_surfaces, offsets)
            got = _native(align(text, ids, table, lead, offsets=offsets), offsets)
            assert got == expected, (text, surfaces, lead_count)
        buffered = align(text, array("I", [min(token, 2**32 - 1) for token in ids]), SurfaceTable(table), lead)
        assert _native(buffered, True) == reference_align(text, expected_surfaces, True)


@given(text=st.text(max_size=60))
@settings(max_examples=200, deadline=None)
def test_an_encodings_own_ids_walk_as_defined(text):
    encoding = tokend.get_encoding("cl100k_base")
    ids = encoding.encode(text, disallowed_special=())
    table = surface_table(encoding)
    expected = reference_align(text, [table[token] for token in ids])
    assert _native(align(text, ids, table, [table[ids[0]]] if ids else []), True) == expected
    assert _native(align(text, encoding.encode_to_buffer(text, disallowed_special=()), table, []), True) == expected


def test_a_surface_table_is_its_list_flat():
    surfaces = [b"a", None, b"", b"\xf0\x9f", None, b"long surface"]
    table = SurfaceTable(surfaces)
    assert len(table) == len(surfaces) and [table[token] for token in range(len(table))] == surfaces
    assert table.nbytes >= 4 * (len(surfaces) + 1) + 15
    with pytest.raises(IndexError):
        table[6]
    with pytest.raises(TypeError, match=r"surfaces\[1\]"):
        SurfaceTable([b"a", "b"])
    big = surface_table(tokend.get_encoding("cl100k_base"))
    assert len(big) == tokend.get_encoding("cl100k_base").n_vocab and big.nbytes < 2_000_000


def test_an_ids_buffer_must_hold_uint32():
    with pytest.raises(TypeError, match="uint32"):
        align("ab", array("H", [0, 0]), [b"a"], [])
    with pytest.raises(TypeError, match="list of ints or a buffer"):
        align("ab", (0, 0), [b"a"], [])
    assert align("ab", array("I", [0, 2**32 - 1]), [b"a"], []) == 1  # no surface for the largest uint32


class _Id(int):
    pass


def test_ids_of_a_list_are_their_int_values_and_others_have_no_surface():
    table = [b"a", b"b"] + [None] * 30 + [b"c"]
    assert isinstance(align("abcab", [0, True, 32, _Id(0), 1], table, []), tuple)  # bool and int subclasses: ints
    for wrong in (-1, 2**30, 2**31, 2**32 - 1, 2**32, 2**64, 1.0, "0", None):
        assert align("ab", [0, wrong], table, []) == 1, wrong


def test_a_walk_runs_once_and_says_how_big_its_text_is():
    walk = prepare("hé", [0, 1], [b"h", "é".encode()], [])
    assert walk.text_bytes == 3
    assert isinstance(walk.run(), tuple)
    with pytest.raises(RuntimeError, match="once"):
        walk.run()


TOKENS = 1_000_000  # 15 looks at the stop


def test_a_passed_deadline_stops_the_walk():
    text, ids, table = "a" * TOKENS, [0] * TOKENS, SurfaceTable([b"a"])
    with pytest.raises(CallStopped), stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        align(text, ids, table, [], offsets=False)
    stop = CallStop()
    stop.cancel()
    with pytest.raises(CallStopped), stop_at(stop):
        align(text, ids, table, [], offsets=False)
    # under a stop not yet due, and without one, the walk is whole
    with stop_at(CallStop(deadline=time.monotonic() + 600)):
        assert len(align(text, ids, table, [], offsets=False)[4]) == 4 * (TOKENS + 1)
    assert len(align(text[:1000], ids[:1000], table, [], offsets=False)[4]) == 4 * 1001
