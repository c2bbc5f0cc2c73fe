"""The budget operations on a second family: SentencePiece (the library itself, behind the family hook), so
they are shown to rest on the engine contract and `token_surfaces` alone — leading-space rule included.

Models are trained here with sentencepiece's trainer on alice29.txt:
- "llama-like": identity normalizer, whitespace kept, dummy prefix, byte fallback (how Llama/Mistral
  models are built): its tokens spell the input, so offsets, truncate and chunk work.
- "nfkc": the trainer's defaults (NFKC, extra whitespace removed): its tokens do not always spell the input,
  and the operations say so.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine._budget_support import hostile_text
from tests.engine._sentencepiece_family import SentencePieceFamily, train_model
from tests.engine.test_chunking import check_chunks
from tests.engine.test_truncation import check_truncation
from tokend.engine import Encoding
from tokend.errors import OffsetsUnavailableError

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@lru_cache(maxsize=None)
def llama_like() -> SentencePieceFamily:
    model = train_model(
        normalization_rule_name="identity", remove_extra_whitespaces=False, byte_fallback=True, add_dummy_prefix=True
    )
    return SentencePieceFamily("llama-like", model)


@lru_cache(maxsize=None)
def nfkc() -> SentencePieceFamily:
    return SentencePieceFamily("nfkc", train_model())


def piece_ids(family: SentencePieceFamily) -> st.SearchStrategy[list[int]]:
    """Ids the library's own decode handles like ours: every piece but byte pieces (whose invalid sequences
    sentencepiece replaces byte by byte, Python's codec per maximal run)."""
    processor = family.processor
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
    assert family.decode(ids) == family.processor.decode(ids)


@pytest.mark.parametrize("family", [llama_like, nfkc], ids=["llama-like", "nfkc"])
@SETTINGS
@given(data=st.data())
def test_stream_split_at_every_position_is_sentencepieces_decode(family, data):
    family = family()
    if data.draw(st.booleans()):
        ids = family.encode(data.draw(hostile_text(12)))
    else:
        ids = data.draw(piece_ids(family))
    expected = family.processor.decode(ids)
    for position in range(len(ids) + 1):
        decoder = family.decoder()
        assert decoder.feed(ids[:position]) + decoder.feed(ids[position:]) + decoder.flush() == expected
    decoder = family.decoder()
    assert "".join(decoder.feed(token) for token in ids) + decoder.flush() == expected


def test_the_leading_space_rule_spans_feeds():
    family = llama_like()
    processor = family.processor
    space, the = processor.piece_to_id("\u2581"), processor.piece_to_id("\u2581the")
    for ids in ([space, the], [processor.bos_id(), space, the], [space, space, the], [processor.bos_id(), the]):
        decoder = family.decoder()
        assert "".join(decoder.feed([token]) for token in ids) + decoder.flush() == processor.decode(ids)


@SETTINGS
@given(text=hostile_text())
def test_offsets_on_a_model_that_spells_its_input(text):
    family = llama_like()
    result = family.encode_with_offsets(text)
    assert result.ids == family.encode(text)
    repaired = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if repaired == text:  # no surrogates: the spans concatenate to the text, the dummy prefix spans nothing
        spelled = b"".join(family.token_surfaces(result.ids)[0])
        assert spelled == text.encode("utf-8")
        for index in range(len(result)):
            start, end = result.starts[index], result.ends[index]
            assert spelled[result.byte_starts[index] : result.byte_ends[index]] in text[start:end].encode("utf-8")


@pytest.mark.parametrize("side", ["right", "left"])
@SETTINGS
@given(text=hostile_text(), budget=st.integers(0, 30))
def test_truncation_on_sentencepiece(side, text, budget):
    family = llama_like()
    result = family.truncate(text, budget, side)
    token_bytes = family.token_surfaces(family.encode(text))[0]
    check_truncation(family.encode, text, result, budget, side, token_bytes)


@SETTINGS
@given(text=hostile_text(), max_tokens=st.integers(6, 30), overlap=st.sampled_from([0, 0, 2]))
def test_chunks_on_sentencepiece(text, max_tokens, overlap):
    family = llama_like()
    chunks = family.chunk(text, max_tokens, overlap)
    check_chunks(family.encode, text, chunks, max_tokens, overlap, family.token_surfaces(family.encode(text))[0])


def test_a_normalizing_model_says_where_it_rewrites_the_text():
    family = nfkc()
    assert family.encode_with_offsets("Alice was beginning").spans()[0][0] == 0
    with pytest.raises(OffsetsUnavailableError) as caught:
        family.encode_with_offsets("Alice  was")  # two spaces become one
    assert caught.value.position == 6 and caught.value.model == "nfkc"
    with pytest.raises(OffsetsUnavailableError):
        family.chunk("Alice  was beginning", 3)
