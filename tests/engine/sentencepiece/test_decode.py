"""Decoding held to `SentencePieceProcessor.decode`: arbitrary id sequences (byte pieces in and out of UTF-8
order, control pieces between them, `<unk>`, pieces with and without a leading `▁` at the start), and the
per-token surfaces that streaming decoders and offsets are built on."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from tests.engine.sentencepiece.models import oracle, ours

# One model per leading-whitespace rule: dummy prefix only (Llama/Mistral), extra-whitespace removal (nmt_nfkc),
# neither (no_dummy_prefix removes extra whitespace but adds no prefix), whitespace as suffix.
DECODE_MODELS = ("mistral_v1", "mistral_v3", "nmt_nfkc", "no_dummy_prefix", "suffix", "symbols")


def _id_sequences(name: str):
    enc = ours(name)
    n = enc.n_vocab
    special = sorted(enc.special_tokens.values())
    byte_ids = [enc.piece_to_id(f"<0x{b:02X}>") for b in range(256)] if enc.model.byte_fallback else []
    leading = [i for i, p in enumerate(enc.model.pieces) if p.startswith("\u2581")][:200]
    interesting = st.sampled_from(special + byte_ids + leading) if byte_ids else st.sampled_from(special + leading)
    return st.lists(st.one_of(st.integers(0, n - 1), interesting), max_size=40)


@pytest.mark.parametrize("name", DECODE_MODELS)
def test_decode_of_arbitrary_ids_equals_sentencepiece(name):
    enc, sp = ours(name), oracle(name)

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(_id_sequences(name))
    def check(ids):
        assert enc.decode(ids) == sp.decode(ids)
        assert b"".join(enc.decode_tokens_bytes(ids)) == enc.decode_bytes(ids)

    check()


@pytest.mark.parametrize("name", ["mistral_v1", "nmt_nfkc"])
def test_hand_picked_sequences(name):
    enc, sp = ours(name), oracle(name)
    byte = (lambda b: enc.piece_to_id(f"<0x{b:02X}>")) if enc.model.byte_fallback else None
    space_pieces = [i for i, p in enumerate(enc.model.pieces) if p.startswith("\u2581")]
    cases = [
        [],
        [enc.unk_id, enc.unk_id],
        [enc.bos_id, space_pieces[0], space_pieces[1]],
        [space_pieces[5], space_pieces[5], space_pieces[5]],
        [enc.eos_id, enc.bos_id],
    ]
    if byte:
        euro = [byte(0xE2), byte(0x82), byte(0xAC)]
        cases += [
            euro,
            euro[:2],  # truncated: sentencepiece gives one U+FFFD per byte, Python's decoder one in all
            [euro[0], enc.bos_id, euro[1], euro[2]],  # a control piece ends a byte run
            [byte(0xE2), byte(0x82), byte(0x41), space_pieces[3]],
            [byte(0xF0), byte(0x9F), byte(0x98), byte(0x80), byte(0xFF), byte(0xED), byte(0xA0), byte(0x80)],
            [byte(0x20), space_pieces[2]],  # text is not empty after a byte: the ▁ stays
            [enc.bos_id, byte(0x41), space_pieces[2]],
        ]
    for ids in cases:
        assert enc.decode(ids) == sp.decode(ids), ids


def test_strict_decoding_raises_where_sentencepiece_replaces():
    enc = ours("mistral_v1")
    truncated = [enc.piece_to_id("<0xE2>"), enc.piece_to_id("<0x82>")]
    assert enc.decode(truncated) == "\ufffd\ufffd" == oracle("mistral_v1").decode(truncated)
    with pytest.raises(UnicodeDecodeError):
        enc.decode(truncated, errors="strict")
    assert enc.decode(truncated, errors="ignore") == ""
    assert enc.decode(enc.encode("héllo €"), errors="strict") == "héllo €"


def test_a_strict_decode_error_gives_the_offset_in_the_decoded_bytes():
    """The error's start was relative to the run of byte pieces it was found in (0 here), and the service
    reported it as the offset: Decode said "at byte offset 0 (... at byte 6 of the decoded bytes)"."""
    enc = ours("mistral_v1")
    ids = enc.encode("héllo ") + [enc.piece_to_id("<0xE2>"), enc.piece_to_id("<0x82>")]
    expected = enc.decode_bytes(ids)
    with pytest.raises(UnicodeDecodeError) as error:
        enc.decode(ids, errors="strict")
    with pytest.raises(UnicodeDecodeError) as reference:
        expected.decode("utf-8")
    assert error.value.start == reference.value.start == 7


@pytest.mark.parametrize("name", DECODE_MODELS)
def test_surfaces_stream_exactly(name):
    enc, sp = ours(name), oracle(name)
    text = "  Hello,  world!\n\tcafé 😀 12345 <s> ab foo"
    ids = [enc.bos_id] + sp.encode(text) if enc.bos_id is not None else sp.encode(text)
    whole = enc.decode_tokens_bytes(ids)
    for cut in range(len(ids) + 1):
        decoder = enc.surface_decoder()
        assert decoder.feed(ids[:cut]) + decoder.feed(ids[cut:]) == whole
    assert b"".join(whole).decode("utf-8") == sp.decode(ids)


def test_single_token_bytes_are_mid_text_surfaces():
    enc = ours("mistral_v1")
    hello = enc.piece_to_id("\u2581Hello")
    assert enc.decode_single_token_bytes(hello) == b" Hello"
    assert enc.decode_tokens_bytes([hello, hello]) == [b"Hello", b" Hello"]
    assert enc.decode_single_token_bytes(enc.bos_id) == b""
    assert enc.decode_single_token_bytes(enc.piece_to_id("<0x0A>")) == b"\n"
    assert enc.decode_single_token_bytes(enc.unk_id) == " \u2047 ".encode()


@pytest.mark.parametrize("name", ["mistral_v1", "nmt_nfkc", "symbols"])
def test_decode_with_offsets(name):
    enc, sp = ours(name), oracle(name)
    text = "Hello wörld 😀 中文 <unk> 12"
    ids = sp.encode(text)
    decoded, offsets = enc.decode_with_offsets(ids)
    assert decoded == sp.decode(ids)
    assert offsets == sorted(offsets) and len(offsets) == len(ids)
    for token, offset, surface in zip(ids, offsets, enc.decode_tokens_bytes(ids)):
        if surface and not enc.model.pieces[token].startswith("<0x"):
            assert decoded[offset:].encode().startswith(surface), (token, offset)
    emoji_bytes = [i for i, t in enumerate(ids) if enc.model.pieces[t] in ("<0xF0>", "<0x9F>", "<0x98>", "<0x80>")]
    assert len({offsets[i] for i in emoji_bytes}) <= 1  # the bytes of one character share its index


def test_unknown_ids_raise_with_the_id():
    from tokend.errors import UnknownTokenIdError

    enc = ours("mistral_v1")
    for bad in (enc.n_vocab, -1):
        with pytest.raises(UnknownTokenIdError) as caught:
            enc.decode([1, bad])
        assert caught.value.token_id == bad
    with pytest.raises(UnknownTokenIdError) as caught:
        enc.decode_batch([[1], [2, 10**9]])
    assert caught.value.item == 1


def _python_walk_handlers():
    """Handlers that send `decode` down the per-byte Python walk (the one other handlers take) while acting as
    "strict" and "replace" do, so the native runs (sp_byte_runs.c) can be held to it."""
    import codecs

    def strict(error):
        raise error

    def replace(error):
        return "\ufffd", error.end

    codecs.register_error("tokend-test-walk-strict", strict)
    codecs.register_error("tokend-test-walk-replace", replace)
    return "tokend-test-walk-strict", "tokend-test-walk-replace"


@pytest.mark.parametrize("name", ["mistral_v1", "mistral_v3"])  # models with byte pieces
def test_the_native_runs_decode_and_fail_as_the_per_byte_walk(name):
    enc = ours(name)
    walk_strict, walk_replace = _python_walk_handlers()

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(_id_sequences(name))
    def check(ids):
        assert enc.decode(ids) == enc.decode(ids, errors=walk_replace)
        try:
            native = enc.decode(ids, errors="strict")
        except UnicodeDecodeError as error:
            with pytest.raises(UnicodeDecodeError) as walked:
                enc.decode(ids, errors=walk_strict)
            found, expected = error, walked.value
            assert (found.object, found.start, found.end, found.reason) == (
                expected.object, expected.start, expected.end, expected.reason)
        else:
            assert native == enc.decode(ids, errors=walk_strict)

    check()


def test_long_runs_of_byte_pieces_among_controls_and_text_decode_as_sentencepiece():
    """Runs far longer than a generated sequence (the native buffers grow), starting with byte pieces (the
    surfaces' shortcut at the start) and broken by control and text pieces, one U+FFFD a malformed byte."""
    import random

    enc, sp = ours("mistral_v3"), oracle("mistral_v3")
    byte_ids = [enc.piece_to_id(f"<0x{b:02X}>") for b in range(256)]
    valid = [enc.piece_to_id(f"<0x{b:02X}>") for b in "é€😀".encode()]
    space_piece = next(i for i, p in enumerate(enc.model.pieces) if p.startswith("\u2581") and len(p) > 2)
    rng = random.Random(7)
    for _ in range(20):
        ids = []
        while len(ids) < 20_000:
            ids += rng.choice([[rng.choice(byte_ids) for _ in range(rng.randrange(1, 3000))], valid * rng.randrange(1, 50),
                               [enc.bos_id], [enc.eos_id, enc.bos_id], [space_piece]])
        assert enc.decode(ids) == sp.decode(ids)
        decoder = enc.surface_decoder()
        cut = rng.randrange(len(ids))
        assert b"".join(decoder.feed(ids[:cut]) + decoder.feed(ids[cut:])) == enc.decode_bytes(ids)
