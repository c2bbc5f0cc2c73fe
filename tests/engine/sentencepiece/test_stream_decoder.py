"""`decoder()` of a SentencePiece model gives sentencepiece's `decode` for ids a model can generate: runs of
byte pieces broken by a control piece (`</s>`, `<s>`) or an ASCII byte piece, malformed UTF-8 in a run (one
U+FFFD per byte), characters split over feeds. The generic incremental UTF-8 decoder joined every token's
bytes: `<0xE2> <0x9F> </s> <0x9F>` streamed "⟟" where sentencepiece decodes three U+FFFD, and `<0xED> <0x80>`
one U+FFFD where it decodes two (106 of 300 random sequences through DecodeStream differed; probe33)."""

from __future__ import annotations

import random

import pytest

from tests.engine.sentencepiece.models import oracle, ours

MODELS = ("mistral_v1", "mistral_v7")
HIGH_BYTES = (0x80, 0x9F, 0xA0, 0xA9, 0xBF, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xFF)


def _streamed(decoder, ids, bounds) -> str:
    out = [decoder.feed(ids[a:b]) for a, b in zip(bounds, bounds[1:])]
    assert all(len(decoder.pending) <= 3 for _ in out)
    return "".join(out) + decoder.flush()


@pytest.mark.parametrize("name", MODELS)
def test_a_control_piece_ends_a_run_of_byte_pieces(name):
    reference, encoding = oracle(name), ours(name)
    e2, x9f = reference.piece_to_id("<0xE2>"), reference.piece_to_id("<0x9F>")
    eos, bos = reference.eos_id(), reference.bos_id()
    decoder = encoding.decoder()
    assert decoder.feed([e2, x9f]) == "" and decoder.pending == bytes([0xE2, 0x9F])  # may still be a character
    assert decoder.feed([x9f]) == "\u27df" and decoder.pending == b""
    for ids in ([e2, x9f, eos, x9f], [e2, bos, x9f, x9f], [e2, x9f, reference.piece_to_id("<0x0A>"), x9f]):
        assert "\u27df" not in reference.decode(ids) and encoding.decode(ids) == reference.decode(ids)
        assert _streamed(encoding.decoder(), ids, range(len(ids) + 1)) == reference.decode(ids), ids


@pytest.mark.parametrize("name", MODELS)
def test_random_generated_sequences_split_anywhere_equal_sentencepiece(name):
    reference, encoding = oracle(name), ours(name)
    byte_ids = [reference.piece_to_id(f"<0x{byte:02X}>") for byte in HIGH_BYTES]
    controls = [reference.unk_id(), reference.bos_id(), reference.eos_id()]
    rng = random.Random(33)
    for _ in range(300):
        ids = [rng.choice(byte_ids) if r < 0.5 else rng.choice(controls) if r < 0.6 else rng.randrange(3, reference.get_piece_size())
               for r in (rng.random() for _ in range(rng.randint(1, 40)))]
        whole = reference.decode(ids)
        assert encoding.decode(ids) == whole
        assert _streamed(encoding.decoder(), ids, range(len(ids) + 1)) == whole, ids  # one id at a time
        cuts = sorted(rng.sample(range(len(ids) + 1), min(4, len(ids) + 1)))
        assert _streamed(encoding.decoder(), ids, [0, *cuts, len(ids)]) == whole, (ids, cuts)


@pytest.mark.parametrize("errors", ["ignore", "backslashreplace"])
def test_other_error_handlers_match_decode(errors):
    reference, encoding = oracle("mistral_v7"), ours("mistral_v7")
    ids = [reference.piece_to_id(f"<0x{byte:02X}>") for byte in (0xED, 0x80, 0xE2, 0x9F)] + [reference.eos_id()]
    ids += reference.encode("é ok") + [reference.piece_to_id("<0xF0>")]
    assert _streamed(encoding.decoder(errors=errors), ids, range(len(ids) + 1)) == encoding.decode(ids, errors=errors)


def test_strict_raises_where_decode_raises_and_starts_afresh():
    reference, encoding = oracle("mistral_v7"), ours("mistral_v7")
    e2, x9f = reference.piece_to_id("<0xE2>"), reference.piece_to_id("<0x9F>")
    with pytest.raises(UnicodeDecodeError):
        encoding.decode([e2, x9f, reference.eos_id()], errors="strict")
    decoder = encoding.decoder(errors="strict")
    assert decoder.feed([e2, x9f]) == ""
    with pytest.raises(UnicodeDecodeError):
        decoder.feed([reference.eos_id()])
    assert decoder.pending == b"" and decoder.feed(reference.encode("ok")) == "ok"


def _python_calls(work) -> int:
    """Python-level function calls while `work()` runs (C calls not counted): a walk per byte shows as one a byte."""
    import sys

    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        work()
    finally:
        sys.setprofile(None)
    return calls


@pytest.mark.parametrize("errors", ["replace", "strict"])
def test_a_long_run_of_byte_pieces_is_decoded_in_c_as_decode_does(errors):
    """A DecodeStream message may hold ~2 M byte pieces (max_request_bytes, 4 a byte): the stream walked the open
    run a byte at a time in Python (2.3 s of CPU holding the GIL for 2 M random byte pieces, where `decode` takes
    0.3 s in C). The walk is C's, and only the run's last 3 bytes are looked at for what to hold back."""
    reference, encoding = oracle("mistral_v7"), ours("mistral_v7")
    rng = random.Random(5)
    text_bytes = "é€😀 ok".encode() if errors == "strict" else bytes(rng.randrange(0x80, 0x100) for _ in range(20_000))
    ids = [reference.piece_to_id(f"<0x{byte:02X}>") for byte in text_bytes * (20_000 // len(text_bytes))]
    ids += [reference.piece_to_id("<0xF0>"), reference.piece_to_id("<0x9F>")]  # an open character: held back
    decoder = encoding.decoder(errors=errors)
    out: list[str] = []
    calls = _python_calls(lambda: out.append(decoder.feed(ids)))
    assert decoder.pending == b"\xf0\x9f" and out[0] == reference.decode(ids[:-2])
    if errors == "replace":
        assert out[0] + decoder.flush() == reference.decode(ids)
    assert calls < 200, calls  # not one a byte (20,000 ids)
