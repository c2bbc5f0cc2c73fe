"""Where the whitespace mark "▁" goes decides how tokens spell their text: every trainer option that moves it
(treat_whitespace_as_suffix, add_dummy_prefix, remove_extra_whitespaces, split_by_whitespace,
allow_whitespace_only_pieces; byte_fallback beside them), for BPE and Unigram, held to `sentencepiece` on
encode, decode, offsets, truncate and chunk (whitespace_differential.py says how each is checked).

With treat_whitespace_as_suffix the dummy mark comes last ("Hi" is "Hi▁"): the last token spells a space the
text does not have, and a "▁" at the start is a space of the text (which `decode` still drops, as
sentencepiece's does). Offsets used to assume the prefix side: they refused such models' text or gave the
first token an empty span.
"""

from __future__ import annotations

import re
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine.sentencepiece.whitespace_differential import (
    FIXED_TEXTS,
    Options,
    compare,
    compare_decoding,
    option_matrix,
    oracle,
    ours,
    random_ids,
    random_texts,
)
from tokend.errors import OffsetsUnavailableError

SUFFIX = Options(suffix=True, byte_fallback=True)  # identity, dummy mark, whitespace kept: spells any text


@pytest.mark.parametrize("options", option_matrix(suffix=True) + option_matrix(suffix=False), ids=Options.name)
def test_every_whitespace_option_agrees_with_sentencepiece(options):
    texts = list(FIXED_TEXTS) + random_texts(30, seed=zlib.crc32(options.name().encode()))
    assert compare(options, texts) == []
    assert compare_decoding(options, random_ids(options, 30, seed=7)) == []


@pytest.mark.parametrize("unigram", [False, True], ids=["bpe", "unigram"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(st.sampled_from(" \n\t\u00a0abcAlice,.'é中😀"), max_size=24))
def test_suffix_models_on_any_text(unigram, text):
    assert compare(Options(suffix=True, unigram=unigram), [text]) == []


def test_the_dummy_mark_at_the_end_spans_nothing():
    enc, processor = ours(SUFFIX), oracle(SUFFIX)
    for text in ("Hello world", " ", " Alice  was ", "a\n b\t"):
        pieces = processor.encode(text, return_type="proto").pieces
        assert processor.id_to_piece(pieces[-1].id).endswith("\u2581")  # the dummy mark is the last token's
        result = enc.encode_with_offsets(text)
        assert result.byte_spans() == [(piece.begin, piece.end) for piece in pieces], text
        assert result.ends[-1] == len(text)


def test_a_leading_space_is_the_texts_own():
    # " " is ["▁", "▁"]: the text's space, then the dummy mark. Offsets gave the first an empty span (decode drops
    # a leading "▁"), sentencepiece gives it the space.
    enc, processor = ours(SUFFIX), oracle(SUFFIX)
    assert processor.encode(" ", out_type=str) == ["\u2581", "\u2581"]
    assert enc.encode_with_offsets(" ").spans() == [(0, 1), (1, 1)]
    assert enc.decode(enc.encode(" ")) == processor.decode(processor.encode(" ")) == " "


def test_truncate_and_chunk_cut_where_sentencepieces_pieces_end():
    enc, processor = ours(SUFFIX), oracle(SUFFIX)
    text = "Alice was beginning to get very tired of sitting by her sister "
    kept = enc.truncate(text, 3)
    assert kept.ids == processor.encode(kept.text) and kept.text == "Alice was "
    assert enc.truncate(text, 3, side="left").ids == processor.encode(enc.truncate(text, 3, side="left").text)
    chunks = enc.chunk(text, 4, prefer="whitespace")
    assert "".join(chunk.text for chunk in chunks) == text
    assert all(chunk.ids == processor.encode(chunk.text) and len(chunk.ids) <= 4 for chunk in chunks)


def test_removed_whitespace_is_refused_not_misplaced():
    # With remove_extra_whitespaces "rabbit " is "rabbit▁": the text's trailing space is removed and the dummy
    # mark added. The tokens' bytes equal the text, but sentencepiece gives the last token "it▁" only "it":
    # offsets answered (4, 7); the text is rewritten, so they are refused, as for a prefix-side model.
    options = Options(suffix=True, remove_extra_whitespaces=True)
    enc, processor = ours(options), oracle(options)
    assert processor.encode("rabbit ", return_type="proto").pieces[-1].end == 6
    with pytest.raises(OffsetsUnavailableError) as caught:
        enc.encode_with_offsets("rabbit ")
    assert caught.value.position == 6
    assert enc.encode_with_offsets("rabbit").byte_spans()[-1][1] == 6  # text it spells has offsets


def _stretch_oracle(processor, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """sentencepiece's ids and byte spans of `text` with <s> and </s> allowed: each stretch between them is a
    text of its own (its own dummy mark), a control piece covers its own text."""
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    base = 0
    for index, part in enumerate(re.split("(<s>|</s>)", text)):
        if index % 2:
            ids.append(processor.piece_to_id(part))
            spans.append((base, base + len(part)))
        elif part:
            pieces = processor.encode(part, return_type="proto").pieces
            ids += [piece.id for piece in pieces]
            spans += [(base + piece.begin, base + piece.end) for piece in pieces]
        base += len(part.encode("utf-8"))
    return ids, spans


@pytest.mark.parametrize("text", ["<s>Hi there</s>", "<s> Alice </s> was", " a <s>", "<s></s>", "x</s> ", "<s>  </s>  "])
def test_allowed_control_pieces_restart_the_text_with_its_own_dummy_mark(text):
    enc, processor = ours(SUFFIX), oracle(SUFFIX)
    result = enc.encode_with_offsets(text, allowed_special="all")
    assert (result.ids, result.byte_spans()) == _stretch_oracle(processor, text)
    for budget in (1, 2, 3):
        kept = enc.truncate(text, budget, allowed_special="all")
        assert kept.ids == _stretch_oracle(processor, kept.text)[0] and len(kept.ids) <= budget
    chunks = enc.chunk(text, 3, allowed_special="all")
    assert "".join(chunk.text for chunk in chunks) == text
    assert all(chunk.ids == _stretch_oracle(processor, chunk.text)[0] for chunk in chunks)
