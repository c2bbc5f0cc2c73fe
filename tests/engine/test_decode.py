"""Decoding and vocabulary introspection, compared with tiktoken."""

from __future__ import annotations

import pickle

import pytest

from tokend.errors import TokendError, UnknownTokenIdError


def test_unknown_id_raises_typed_key_error(enc, oracle):
    bad = enc.n_vocab + 5
    with pytest.raises(KeyError):
        oracle.decode([1, bad])
    with pytest.raises(UnknownTokenIdError) as info:
        enc.decode([1, bad])
    assert info.value.token_id == bad and info.value.item is None
    assert isinstance(info.value, KeyError) and isinstance(info.value, TokendError)
    assert str(bad) in str(info.value)
    with pytest.raises(UnknownTokenIdError):
        enc.decode_single_token_bytes(bad)
    with pytest.raises(UnknownTokenIdError) as info:
        enc.decode_batch([[1], [2, bad]])
    assert info.value.item == 1


def test_cl100k_has_gaps_that_are_unknown(cl100k):
    # ids 100261..100275 are unused in cl100k_base
    with pytest.raises(UnknownTokenIdError):
        cl100k.decode([100261])


def test_strict_decoding_raises_unicode_error(enc, oracle):
    ids = enc.encode_bytes(b"\xe4\xb8")  # half of a CJK character
    assert enc.decode(ids) == oracle.decode(ids) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        enc.decode(ids, errors="strict")


def test_properties_match_tiktoken(enc, oracle):
    assert enc.name == oracle.name
    assert enc.n_vocab == oracle.n_vocab
    assert enc.max_token_value == oracle.max_token_value
    assert enc.eot_token == oracle.eot_token
    assert enc.special_tokens_set == oracle.special_tokens_set
    assert enc.pattern == oracle._pat_str
    assert dict(enc.special_tokens) == oracle._special_tokens
    assert enc.mergeable_ranks == oracle._mergeable_ranks
    assert enc.token_byte_values() == oracle.token_byte_values()
    assert enc.decode_single_token_bytes(enc.eot_token) == b"<|endoftext|>"
    assert enc.encode_single_token("hello") == oracle.encode_single_token("hello")
    assert enc.encode_single_token("<|endoftext|>") == enc.eot_token
    assert enc.is_special_token(enc.eot_token) and not enc.is_special_token(0)
    ids = oracle.encode("hello 世界")
    assert enc.decode_tokens_bytes(ids) == oracle.decode_tokens_bytes(ids)
    assert enc.decode_with_offsets(ids) == oracle.decode_with_offsets(ids)
    assert repr(enc) == f"<Encoding {enc.name!r}>"


def test_read_only_views(enc):
    with pytest.raises(TypeError):
        enc.mergeable_ranks[b"zz"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        enc.special_tokens["<|x|>"] = 1  # type: ignore[index]
    enc.special_tokens_set.add("<|x|>")  # a copy: the encoding is unaffected
    assert "<|x|>" not in enc.special_tokens_set


def test_pickle_round_trip(cl100k):
    clone = pickle.loads(pickle.dumps(cl100k))
    assert clone.encode("pickle me, 123") == cl100k.encode("pickle me, 123")
    assert clone.name == cl100k.name
