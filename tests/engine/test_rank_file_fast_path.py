"""The native fast path of tiktoken rank files (`tiktoken_ranks.parse_canonical_ranks`: a slice of lines per
native call) against the Python parser, which is the spec: on real files it gives the same ranks in the same
order; on anything else it either agrees or declines (None) and the Python parser decides, so it never
accepts a file the spec refuses."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokend.engine import load_tiktoken_ranks
from tokend.engine import tiktoken_ranks
from tokend.engine.tiktoken_ranks import _parse_ranks, parse_canonical_ranks
from tokend.errors import ModelFormatError

_EMBEDDED = Path(__import__("tokend").__file__).parent / "registry" / "default"


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base", "p50k_base", "r50k_base"])
def test_embedded_rank_files_take_the_fast_path_with_the_same_result(name):
    data = gzip.decompress((_EMBEDDED / name / "1" / "ranks.tiktoken.gz").read_bytes())
    fast = parse_canonical_ranks(data)
    assert fast is not None
    assert list(fast.items()) == list(_parse_ranks(data, name).items())


@pytest.mark.parametrize(
    "data",
    [
        b"YQ==  0\n",            # two spaces
        b"YQ==\t0\n",            # a tab
        b"YQ== 0\r\nYg== 1\r\n",  # CRLF
        b" YQ== 0\n",            # leading space
        b"YQ== +0\n",            # a sign
        b"YQ== 1_0\n",           # an underscore int() takes
        b"YR== 0\n",             # unused bits set
        b" 0\n",                 # an empty token
        b"YQ== 99999999999\n",   # a rank beyond the fast path's range
        b"YQ== 0\nYQ== 1\n",     # a token twice
        b"YQ== 0\nYg== 0\n",     # a rank twice
        b"YQ== 0 extra\n",       # three fields
        b"Y Q== 0\n",
    ],
)
def test_anything_not_canonical_is_left_to_the_python_parser(data):
    assert parse_canonical_ranks(data) is None
    try:
        expected = _parse_ranks(data, "t")
    except ModelFormatError as refused:
        with pytest.raises(ModelFormatError) as again:
            load_tiktoken_ranks(data, what="t")
        assert str(again.value) == str(refused)
    else:
        assert load_tiktoken_ranks(data) == expected


_token = st.binary(min_size=1, max_size=12).map(base64.b64encode)
_line = st.one_of(
    st.tuples(_token, st.integers(0, 300)).map(lambda pair: pair[0] + b" " + str(pair[1]).encode()),
    st.tuples(_token, st.sampled_from([b" ", b"  ", b"\t", b"\x0b"]), st.sampled_from([b"1", b"+2", b"-3", b"0x4", b"05", b""])).map(b"".join),
    st.binary(max_size=12),
)
_file = st.tuples(st.lists(_line, max_size=12), st.sampled_from([b"\n", b"\r\n", b"\r"]), st.booleans()).map(
    lambda parts: parts[1].join(parts[0]) + (parts[1] if parts[2] else b""))


@pytest.mark.parametrize("lines_per_call", [1, 3, tiktoken_ranks._LINES_PER_CALL])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_file)
def test_fast_path_agrees_with_the_spec_or_declines(lines_per_call, data):
    # Also with slices of 1 and 3 lines, so that the files drawn (up to 12 lines) cross slice boundaries.
    default, tiktoken_ranks._LINES_PER_CALL = tiktoken_ranks._LINES_PER_CALL, lines_per_call
    try:
        fast = parse_canonical_ranks(data)
    finally:
        tiktoken_ranks._LINES_PER_CALL = default
    try:
        expected = _parse_ranks(data, "t")
    except ModelFormatError:
        assert fast is None
        return
    assert fast is None or list(fast.items()) == list(expected.items())


def _lines(ranks: dict[bytes, int]) -> bytes:
    return b"".join(base64.b64encode(token) + b" " + str(rank).encode() + b"\n" for token, rank in ranks.items())


_MANY = {bytes([byte]): byte for byte in range(256)} | {f"t{index:05d}".encode(): 256 + index for index in range(10_000)}


def test_a_file_of_many_slices_is_read_whole():
    # The native path reads a slice of lines per call (tiktoken_ranks._LINES_PER_CALL); 10,256 lines are several.
    data = _lines(_MANY)
    assert list(parse_canonical_ranks(data).items()) == list(_parse_ranks(data, "t").items())


@pytest.mark.parametrize("repeat", ["token", "rank"])
def test_a_repeat_in_a_later_slice_than_its_first_line_is_left_to_the_python_parser(repeat):
    data = _lines(_MANY) + (base64.b64encode(b"t00003") + b" 99999\n" if repeat == "token" else b"enp6 259\n")
    assert parse_canonical_ranks(data) is None
    with pytest.raises(ModelFormatError, match="line 10257"):
        load_tiktoken_ranks(data, what="t")


def test_a_rank_past_the_lines_of_the_file_is_left_to_the_python_parser():
    data = b"YQ== 0\nYg== 40000\n"  # sparse: more than the file's lines could number
    assert parse_canonical_ranks(data) is None
    assert load_tiktoken_ranks(data) == {b"a": 0, b"b": 40000}
