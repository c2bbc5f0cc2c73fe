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
