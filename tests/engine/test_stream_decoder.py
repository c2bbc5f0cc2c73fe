"""decoder(): ids fed in any pieces give exactly `decode` of them all; only complete characters come out
before `flush`. On every family, with ids that split characters, specials, and invalid UTF-8."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine._budget_support import ATOMS, FAMILY_NAMES, OPENAI_NAMES, family, hostile_text, oracle
from tokend.errors import UnknownTokenIdError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stream(decoder, ids, split_points) -> tuple[list[str], str]:
    """Feed ids in the pieces cut at `split_points`; the outputs of each feed, and of flush."""
    bounds = [0, *sorted(set(split_points)), len(ids)]
    outputs = [decoder.feed(ids[a:b]) for a, b in zip(bounds, bounds[1:])]
    return outputs, decoder.flush()


def byte_token_ids(encoding) -> list[int]:
    """Ids of single-byte tokens 0x80-0xFF: fragments of characters, and invalid UTF-8 in most orders."""
    return [encoding.encode_single_token(bytes([byte])) for byte in range(0x80, 0x100)]


@st.composite
def id_sequences(draw, name: str):
    encoding = family(name)
    choices = st.one_of(
        hostile_text(12).map(lambda text: encoding.encode(text, disallowed_special=())),
        st.lists(st.sampled_from(byte_token_ids(encoding)), max_size=6),
        st.lists(st.integers(0, encoding.max_token_value), max_size=4).map(
            lambda ids: [token for token in ids if _known(encoding, token)]
        ),
    )
    return [token for part in draw(st.lists(choices, max_size=5)) for token in part]


def _known(encoding, token: int) -> bool:
    try:
        encoding.decode_single_token_bytes(token)
    except KeyError:
        return False
    return True


@pytest.mark.parametrize("name", FAMILY_NAMES)
@SETTINGS
@given(data=st.data())
def test_split_at_every_position_equals_decode(name, data):
    encoding = family(name)
    ids = data.draw(id_sequences(name))
    whole = encoding.decode(ids, errors="replace")
    for position in range(len(ids) + 1):  # every single split point
        outputs, tail = stream(encoding.decoder(), ids, [position])
        assert "".join(outputs) + tail == whole
    one_by_one, tail = stream(encoding.decoder(), ids, range(len(ids)))
    assert "".join(one_by_one) + tail == whole
    # any number of splits at once
    splits = data.draw(st.lists(st.integers(0, len(ids)), max_size=6))
    outputs, tail = stream(encoding.decoder(), ids, splits)
    assert "".join(outputs) + tail == whole


@pytest.mark.parametrize("name", OPENAI_NAMES)
@SETTINGS
@given(text=hostile_text())
def test_streamed_text_is_tiktokens_decode(name, text):
    ids = oracle(name).encode(text, disallowed_special=())
    outputs, tail = stream(family(name).decoder(), ids, range(len(ids)))
    assert "".join(outputs) + tail == oracle(name).decode(ids)
    # valid text: every character is out before flush, and nothing before it is complete
    assert tail == ""


def test_only_complete_characters_come_out():
    encoding = family("cl100k_base")
    ids = encoding.encode("a😀b")
    decoder = encoding.decoder()
    pieces = [decoder.feed([token]) for token in ids]
    assert "".join(pieces) == "a😀b"
    assert all(piece in ("", "a", "😀", "b", "a😀", "😀b") for piece in pieces)
    partial = encoding.decoder()
    emoji_tokens = [token for token in ids if encoding.decode_single_token_bytes(token) != b"a"][:1]
    assert partial.feed(emoji_tokens) == "" and partial.pending  # half an emoji stays inside
    assert partial.flush() == "\ufffd" and partial.pending == b""


def test_errors_strict_raises_where_decode_raises():
    encoding = family("cl100k_base")
    invalid = [encoding.encode_single_token(b"\xff")]
    with pytest.raises(UnicodeDecodeError):
        encoding.decode(invalid, errors="strict")
    decoder = encoding.decoder(errors="strict")
    with pytest.raises(UnicodeDecodeError):
        decoder.feed(invalid)
    assert decoder.feed(encoding.encode("ok")) == "ok"  # the decoder starts afresh after the error
    incomplete = encoding.decoder(errors="strict")
    assert incomplete.feed(encoding.encode("😀")[:1]) == ""
    with pytest.raises(UnicodeDecodeError):
        incomplete.flush()


@pytest.mark.parametrize("errors", ["ignore", "backslashreplace", "surrogateescape"])
def test_other_error_handlers_match_decode(errors):
    encoding = family("o200k_base")
    ids = byte_token_ids(encoding)[::7] + encoding.encode("tail é")
    outputs, tail = stream(encoding.decoder(errors=errors), ids, range(len(ids)))
    assert "".join(outputs) + tail == encoding.decode(ids, errors=errors)


def test_special_tokens_decode_to_their_text():
    encoding = family("cl100k_base")
    ids = encoding.encode("a<|endoftext|>b", allowed_special="all")
    decoder = encoding.decoder()
    assert [decoder.feed(token) for token in ids] == ["a", "<|endoftext|>", "b"]  # a bare int is one id


def test_unknown_id_raises_and_changes_nothing():
    encoding = family("cl100k_base")
    decoder = encoding.decoder()
    first = encoding.encode("😀")
    assert decoder.feed(first[:1]) == ""
    with pytest.raises(UnknownTokenIdError):
        decoder.feed([10**9])
    assert decoder.feed(first[1:]) == "😀"


def test_flush_starts_a_new_sequence():
    encoding = family("trained")
    decoder = encoding.decoder()
    assert decoder.feed(encoding.encode("Alice")) + decoder.flush() == "Alice"
    assert decoder.feed(encoding.encode(" said")) + decoder.flush() == " said"


def test_bad_errors_argument():
    with pytest.raises(ValueError, match="'nope' is not a codec error handler"):
        family("cl100k_base").decoder(errors="nope")
    with pytest.raises(TypeError):
        family("cl100k_base").decoder(errors=None)


def test_one_megabyte_one_id_at_a_time():
    encoding = family("o200k_base")
    ids = encoding.encode(("".join(ATOMS) * 2000)[:1_000_000])
    decoder = encoding.decoder()
    assert "".join(decoder.feed(token) for token in ids) + decoder.flush() == encoding.decode(ids)
