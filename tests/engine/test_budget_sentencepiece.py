"""The budget operations on a second family: tokend's `SentencePieceEncoding` (no `Encoding`), so they are shown
to rest on the engine contract and `token_surfaces` alone — leading-space rule included — with `sentencepiece`
itself as the oracle of every id and every decoded text.

Models are trained here with sentencepiece's trainer on alice29.txt (tests/engine/_sentencepiece_family.py):
- "llama-like": identity normalizer, whitespace kept, dummy prefix, byte fallback (how Llama/Mistral
  models are built): its tokens spell the input, so offsets, truncate and chunk work.
- "nfkc": the trainer's defaults (NFKC, extra whitespace removed): its tokens do not always spell the input,
  and the operations say so.
"""

from __future__ import annotations

import functools

import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.engine._budget_support import hostile_text
from tests.engine._sentencepiece_family import family as sentencepiece_family
from tests.engine._sentencepiece_family import oracle as sentencepiece_oracle
from tests.engine.test_chunking import check_chunks
from tests.engine.test_truncation import check_truncation
from tokend.engine import Encoding
from tokend.engine.sentencepiece import SentencePieceEncoding
from tokend.errors import OffsetsUnavailableError, UnknownTokenIdError

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def llama_like() -> SentencePieceEncoding:
    return sentencepiece_family("llama-like")


def nfkc() -> SentencePieceEncoding:
    return sentencepiece_family("nfkc")


def oracle(family: SentencePieceEncoding):
    return sentencepiece_oracle(family.name)


def piece_ids(family: SentencePieceEncoding) -> st.SearchStrategy[list[int]]:
    """Ids the stream decoder handles like sentencepiece: every piece but byte pieces (whose invalid sequences
    sentencepiece replaces byte by byte, Python's codec per maximal run)."""
    processor = oracle(family)
    usable = [token for token in range(family.n_vocab) if not processor.is_byte(token)]
    leading = [processor.piece_to_id("\u2581"), processor.bos_id(), processor.eos_id(), processor.unk_id()]
    return st.lists(st.one_of(st.sampled_from(leading), st.sampled_from(usable)), max_size=12)


def test_it_is_another_family():
    assert not isinstance(llama_like(), Encoding)


@pytest.mark.parametrize("family", [llama_like, nfkc], ids=["llama-like", "nfkc"])
@SETTINGS
@given(data=st.data())
def test_decode_through_the_hook_is_sentencepieces(family, data):
    family = family()
    ids = data.draw(piece_ids(family))
    surfaces, _ = family.token_surfaces(ids)
    assert b"".join(surfaces).decode("utf-8", "replace") == oracle(family).decode(ids) == family.decode(ids)


@pytest.mark.parametrize("family", [llama_like, nfkc], ids=["llama-like", "nfkc"])
@SETTINGS
@given(text=hostile_text(40))
def test_ids_are_sentencepieces(family, text):
    family = family()
    repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")  # the library refuses surrogates
    # sentencepiece reads special-token text ("<s>") as text: tokend's equivalent is disallowed_special=()
    assert family.encode(text, disallowed_special=()) == oracle(family).encode(repaired)


def test_unknown_ids_are_refused_by_the_hook_before_anything_else():
    family = llama_like()
    for bad in ([family.n_vocab], [-1], [5, "x"]):
        with pytest.raises(UnknownTokenIdError):
            family.token_surfaces(bad)


@pytest.mark.parametrize("family", [llama_like, nfkc], ids=["llama-like", "nfkc"])
@SETTINGS
@given(data=st.data())
def test_stream_split_at_every_position_is_sentencepieces_decode(family, data):
    family = family()
    if data.draw(st.booleans()):
        ids = family.encode(data.draw(hostile_text(12)), disallowed_special=())
    else:
        ids = data.draw(piece_ids(family))
    expected = oracle(family).decode(ids)
    for position in range(len(ids) + 1):
        decoder = family.decoder()
        assert decoder.feed(ids[:position]) + decoder.feed(ids[position:]) + decoder.flush() == expected
    decoder = family.decoder()
    assert "".join(decoder.feed(token) for token in ids) + decoder.flush() == expected


def test_the_leading_space_rule_spans_feeds():
    family = llama_like()
    processor = oracle(family)
    space, the = processor.piece_to_id("\u2581"), processor.piece_to_id("\u2581the")
    for ids in ([space, the], [processor.bos_id(), space, the], [space, space, the], [processor.bos_id(), the]):
        decoder = family.decoder()
        assert "".join(decoder.feed([token]) for token in ids) + decoder.flush() == processor.decode(ids)


def spelled_text() -> st.SearchStrategy[str]:
    """hostile_text without the model's space mark "\u2581" (in the input it decodes as a space, so the tokens
    do not spell the text: offsets are refused, test_the_space_mark_in_the_input_has_no_offsets)."""
    return hostile_text().map(lambda text: text.replace("\u2581", "_"))


def test_the_space_mark_in_the_input_has_no_offsets():
    family = llama_like()
    for text in ("\u2581", "a\u2581b"):
        with pytest.raises(OffsetsUnavailableError):
            family.encode_with_offsets(text)
        with pytest.raises(OffsetsUnavailableError):
            family.truncate(text, 1)


@SETTINGS
@given(text=spelled_text())
def test_offsets_on_a_model_that_spells_its_input(text):
    family = llama_like()
    # special-token text ("<s>") is text here, as sentencepiece reads it: disallowed_special=() throughout
    result = family.encode_with_offsets(text, disallowed_special=())
    assert result.ids == family.encode(text, disallowed_special=())
    repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if repaired == text:  # no surrogates: the spans concatenate to the text, the dummy prefix spans nothing
        spelled = b"".join(family.token_surfaces(result.ids)[0])
        assert spelled == text.encode("utf-8")
        for index in range(len(result)):
            start, end = result.starts[index], result.ends[index]
            assert spelled[result.byte_starts[index] : result.byte_ends[index]] in text[start:end].encode("utf-8")


@pytest.mark.parametrize("side", ["right", "left"])
@SETTINGS
@given(text=spelled_text(), budget=st.integers(0, 30))
def test_truncation_on_sentencepiece(side, text, budget):
    family = llama_like()
    encode = functools.partial(family.encode, disallowed_special=())
    result = family.truncate(text, budget, side, disallowed_special=())
    token_bytes = family.token_surfaces(encode(text))[0]
    check_truncation(encode, text, result, budget, side, token_bytes)


@SETTINGS
@given(text=spelled_text(), max_tokens=st.integers(6, 30), overlap=st.sampled_from([0, 0, 2]))
def test_chunks_on_sentencepiece(text, max_tokens, overlap):
    family = llama_like()
    encode = functools.partial(family.encode, disallowed_special=())
    chunks = family.chunk(text, max_tokens, overlap, disallowed_special=())
    check_chunks(encode, text, chunks, max_tokens, overlap, family.token_surfaces(encode(text))[0])


def test_a_normalizing_model_says_where_it_rewrites_the_text():
    family = nfkc()
    assert family.encode_with_offsets("Alice was beginning").spans()[0][0] == 0
    with pytest.raises(OffsetsUnavailableError) as caught:
        family.encode_with_offsets("Alice  was")  # two spaces become one
    assert caught.value.position == 6 and caught.value.model == "nfkc"
    with pytest.raises(OffsetsUnavailableError):
        family.chunk("Alice  was beginning", 3)


# Mistral 7B instruct v3's control pieces, as a chat prompt holds them.
CONTROL_TEXTS = ("<s>", "</s>", "[INST]", "[/INST]")
_CONTROL = re.compile("(" + "|".join(re.escape(token) for token in sorted(CONTROL_TEXTS, key=len, reverse=True)) + ")")


def stretch_oracle(processor, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """sentencepiece's ids and byte spans for `text` with its control pieces allowed: each stretch between
    them is a text of its own (llama.cpp's parse_special; what tokend's encode does), a control piece covers
    its own text."""
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    base = 0
    for index, part in enumerate(_CONTROL.split(text)):
        if index % 2:
            ids.append(processor.piece_to_id(part))
            spans.append((base, base + len(part.encode())))
        elif part:
            pieces = processor.encode(part, return_type="proto").pieces
            ids += [piece.id for piece in pieces]
            spans += [(base + piece.begin, base + piece.end) for piece in pieces]
        base += len(part.encode())
    return ids, spans


@SETTINGS
@given(parts=st.lists(st.one_of(st.sampled_from(CONTROL_TEXTS), st.text(st.characters(exclude_categories=("Cs",)), max_size=12)), max_size=6))
@example(parts=["<unk>", "[INST]", "<s>x"])  # special-token text that is not allowed stays text (hypothesis found it)
@example(parts=["\u2581"])
def test_allowed_control_pieces_have_offsets_truncation_and_chunks(parts):
    """A control piece spells nothing and the text after it is encoded on its own (its own dummy prefix), so
    offsets are aligned stretch by stretch: held to sentencepiece's own piece spans."""
    from tests.engine.sentencepiece.models import oracle as packaged_oracle
    from tests.engine.sentencepiece.models import ours

    text = "".join(parts)
    family, processor = ours("mistral_v3"), packaged_oracle("mistral_v3")
    allowed = set(CONTROL_TEXTS)
    if "\u2581" in text:
        # The model's own space mark in the input decodes as a space: the tokens do not spell the text, and
        # offsets are refused as for any rewriting model (docs/budgets.md), never wrong.
        with pytest.raises(OffsetsUnavailableError):
            family.encode_with_offsets(text, allowed_special=allowed, disallowed_special=())
        return
    # other special-token text ("<unk>", "<s>") is text, as sentencepiece reads it
    result = family.encode_with_offsets(text, allowed_special=allowed, disallowed_special=())
    ids, spans = stretch_oracle(processor, text)
    assert result.ids == ids
    # byte pieces: sentencepiece gives the whole character to the last one, tokend each its own byte
    whole = [index for index, token in enumerate(ids) if not processor.is_byte(token)]
    assert [result.byte_spans()[index] for index in whole] == [spans[index] for index in whole]
    for budget in (1, 3, 7):
        kept = family.truncate(text, budget, allowed_special=allowed, disallowed_special=())
        assert kept.start == 0 and len(kept.ids) <= budget
        assert kept.ids == stretch_oracle(processor, kept.text)[0]
    chunks = family.chunk(text, 8, allowed_special=allowed, disallowed_special=())
    assert "".join(chunk.text for chunk in chunks) == text
    for chunk in chunks:
        assert chunk.ids == stretch_oracle(processor, chunk.text)[0] and len(chunk.ids) <= 8
