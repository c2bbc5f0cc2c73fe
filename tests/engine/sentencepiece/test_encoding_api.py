"""The engine contract on SentencePiece models: special-token policy (tiktoken's), the family's ids and
properties held to sentencepiece's, single tokens, batches, pickling, the piece cache, a complexity guard."""

from __future__ import annotations

import pickle
import time

import pytest

from tokend.engine.sentencepiece import PieceType, SentencePieceEncoding
from tokend.errors import DisallowedSpecialTokenError

from tests.engine.sentencepiece.models import model_bytes, oracle, ours


def _sp_id(value: int) -> int | None:
    return None if value < 0 else value


def test_family_properties_equal_sentencepiece(ours, oracle):
    assert ours.algorithm == {"bpe": "sentencepiece-bpe", "unigram": "sentencepiece-unigram"}[ours.model.model_type]
    assert ours.n_vocab == oracle.get_piece_size() == ours.max_token_value + 1
    assert (ours.bos_id, ours.eos_id, ours.pad_id) == tuple(_sp_id(f()) for f in (oracle.bos_id, oracle.eos_id, oracle.pad_id))
    assert ours.unk_id == oracle.unk_id()
    assert [ours.id_to_piece(i) for i in range(ours.n_vocab)] == [oracle.id_to_piece(i) for i in range(ours.n_vocab)]
    specials = {oracle.id_to_piece(i): i for i in range(ours.n_vocab) if oracle.is_control(i) or oracle.is_unknown(i)}
    assert dict(ours.special_tokens) == specials and ours.special_tokens_set == set(specials)
    assert ours.pattern == ""
    values = ours.token_byte_values()
    assert values == sorted(set(values))


def test_normalizer_names():
    assert ours("mistral_v1").normalizer_name == "identity"
    assert ours("botchan_bpe").normalizer_name == "nmt_nfkc"
    assert ours("nfkc_cf").normalizer_name == "nfkc_cf"


def test_special_token_text_is_refused_by_default_and_plain_when_ordinary():
    enc, sp = ours("mistral_v3"), oracle("mistral_v3")
    with pytest.raises(DisallowedSpecialTokenError) as caught:
        enc.encode("say [INST] hi")
    assert (caught.value.token, caught.value.offset) == ("[INST]", 4)
    assert enc.encode_ordinary("say [INST] hi") == sp.encode("say [INST] hi")
    assert enc.encode("say [INST] hi", disallowed_special=()) == sp.encode("say [INST] hi")
    with pytest.raises(DisallowedSpecialTokenError):
        enc.count("</s>")


def test_allowed_special_tokens_split_the_text_into_sentences():
    enc, sp = ours("mistral_v3"), oracle("mistral_v3")
    text = "<s>[INST] What is 2+2? [/INST] 4</s>"
    want = [1, 3] + sp.encode(" What is 2+2? ") + [4] + sp.encode(" 4") + [2]
    assert enc.encode(text, allowed_special="all") == want
    assert enc.count(text, allowed_special="all") == len(want)
    assert enc.encode("<s>Hi", allowed_special={"<s>"}) == [1] + sp.encode("Hi")  # the dummy prefix again
    with pytest.raises(DisallowedSpecialTokenError):
        enc.encode(text, allowed_special={"<s>"})
    assert enc.decode(want) == sp.decode(want)


def test_user_defined_pieces_are_matched_in_text_under_the_default_policy():
    enc, sp = ours("mistral_v3"), oracle("mistral_v3")
    text = "see [REFERENCE_DOC_12] and [REFERENCE_DOC_1"
    assert "[REFERENCE_DOC_12]" in enc.user_defined_pieces
    assert enc.encode(text) == sp.encode(text)
    assert enc.piece_to_id("[REFERENCE_DOC_12]") in enc.encode(text)


def test_encode_single_token():
    enc = ours("mistral_v1")
    assert enc.encode_single_token("\u2581Hello") == enc.piece_to_id("\u2581Hello")
    assert enc.encode_single_token("\u2581Hello".encode()) == enc.piece_to_id("\u2581Hello")
    assert enc.encode_single_token("<s>") == 1
    assert enc.encode_single_token("<0x0A>") == oracle("mistral_v1").piece_to_id("<0x0A>")
    for missing in ("Hello world", b"\xff"):
        with pytest.raises(KeyError):
            enc.encode_single_token(missing)


def test_batches_report_the_item():
    enc = ours("mistral_v1")
    texts = ["hello", "a <s> b", "c"]
    with pytest.raises(DisallowedSpecialTokenError) as caught:
        enc.encode_batch(texts)
    assert caught.value.item == 1
    assert enc.encode_batch(texts, allowed_special="all") == [enc.encode(t, allowed_special="all") for t in texts]
    assert enc.encode_ordinary_batch(texts) == [oracle("mistral_v1").encode(t) for t in texts]
    assert enc.count_batch(["a", "bb"]) == [len(enc.encode("a")), len(enc.encode("bb"))]
    assert enc.decode_batch([[1, 2], enc.encode("hi")]) == ["", "hi"]
    assert enc.decode_bytes_batch([enc.encode("hé")]) == ["hé".encode()]


def test_lone_surrogates_are_repaired_as_tiktoken_does():
    enc = ours("mistral_v1")
    assert enc.encode("a\ud800b") == enc.encode("a\ufffdb") == oracle("mistral_v1").encode("a\ufffdb")
    assert enc.count("a\ud800b") == len(enc.encode("a\ufffdb"))


def test_pickle_round_trip():
    enc = ours("symbols")
    clone = pickle.loads(pickle.dumps(enc))
    text = "foobar <tool> 12 the end"
    assert clone.encode(text) == enc.encode(text) and clone.name == enc.name


def test_piece_cache_counts_hits():
    enc = SentencePieceEncoding.from_model_file("fresh", model_bytes("mistral_v1"))
    enc.encode("tokenization tokenization tokenization")
    stats = enc.piece_cache_stats()
    assert stats.hits >= 2 and stats.misses >= 1 and stats.size >= 1
    disabled = SentencePieceEncoding.from_model_file("nocache", model_bytes("mistral_v1"), piece_cache_capacity=0)
    assert disabled.encode("tokenization tokenization") == enc.encode("tokenization tokenization")
    assert disabled.piece_cache_stats().hits == 0


def test_segments_past_the_short_tables_room_take_the_piece_cache():
    """Segments of up to 15 bytes are cached in a short table of at most piece_cache_capacity of them; once it is
    full, new ones go to the piece cache. Both ways give sentencepiece's ids, and both count hits."""
    import random

    letters = random.Random(5)
    words = ["".join(letters.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(letters.randint(4, 11))) for _ in range(300)]
    long_words = ["internationalization" + word for word in words[:20]]  # > 15 bytes: the piece cache's
    text = " ".join(words + long_words)
    sp = oracle("mistral_v1")
    enc = SentencePieceEncoding.from_model_file("small", model_bytes("mistral_v1"), piece_cache_capacity=8)
    first = enc._core.cache_stats()
    assert enc.encode_ordinary(text) == sp.encode(text)
    filled = enc._core.cache_stats()
    assert filled[2] <= filled[3] and filled[2] - first[2] > 8  # the short table's 8, and the piece cache's
    assert enc.encode_ordinary(text) == sp.encode(text)
    assert enc.count_ordinary(text) == len(sp.encode(text))
    again = enc._core.cache_stats()
    assert again[0] - filled[0] >= 8  # repeated segments found: at least the short table's own


def test_models_with_unused_merges_are_merged_a_sentence_at_a_time():
    enc = ours("unused")
    assert enc._core.has_unused_merges and not ours("llama2_like")._core.has_unused_merges
    assert any(t == PieceType.UNUSED for t in enc.model.types)
    text = "the cat sat on the mat, the end " * 50
    assert enc.encode_ordinary(text) == oracle("unused").encode(text)
    assert enc.piece_cache_stats().hits == 0  # whole sentences: nothing for the cache to hold


@pytest.mark.parametrize(
    "name, text",
    [
        ("mistral_v1", "a" * 1_000_000),
        ("mistral_v1", "ab" * 500_000),
        ("mistral_v1", " " * 1_000_000),
        ("mistral_v1", "7" * 1_000_000),
        ("mistral_v1", "\u2581" * 333_333),
        ("unused", "the cat " * 125_000),  # merged as one sentence: no segments, no cache
        ("kyoto_unigram", "a" * 1_000_000),  # Viterbi over the whole sentence
        ("unigram", "the cat " * 125_000),
    ],
    ids=["a", "ab", "spaces", "digits", "marks", "whole-sentence", "unigram-a", "unigram-words"],
)
def test_a_megabyte_without_boundaries_is_linear_ish(name, text):
    enc = ours(name)
    started = time.perf_counter()
    count = enc.count_ordinary(text)
    elapsed = time.perf_counter() - started
    assert 0 < count <= len(text) + 1
    assert elapsed < 5.0, f"{elapsed:.2f} s for a 1 MB text (guard: 5 s; sentencepiece takes ~0.3-0.5 s)"


def test_threads_share_one_encoding():
    """The core releases the GIL while it normalizes a big str and merges a long segment, and yields it while
    scanning: several threads on one encoding (one piece cache) still get sentencepiece's ids."""
    from concurrent.futures import ThreadPoolExecutor

    enc = SentencePieceEncoding.from_model_file("shared", model_bytes("mistral_v1"))
    sp = oracle("mistral_v1")
    texts = [
        "word salad " * 9_000,  # ~100 KB: normalized without the GIL, scanned in windows
        "x" * 40_000,  # one long segment: merged without the GIL
        "Hello world, 12345 😀 héllo",
        "中文" * 5_000,
    ] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(enc.encode_ordinary, texts))
    assert results == [sp.encode(text) for text in texts]


def test_longest_token_bytes_is_the_longest_single_token_decode(ours):
    # What a Decode's answer-size bound reads (tokend.service.token_sizes), measured in slices.
    longest = max(len(ours.decode_single_token_bytes(token)) for token in range(ours.n_vocab))
    assert ours._longest_token_bytes == longest
