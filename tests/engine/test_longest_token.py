"""`Encoding._longest_token_bytes`: the longest bytes any id decodes to, from the native core's rank table and
the few special, added and extra-decoder tokens, never from a pass over the vocabulary (a Decode's size
bound reads it in a server worker: tokend.service.token_sizes). tiktoken's vocabulary is the oracle."""

from __future__ import annotations

import pytest

from tokend.engine import AddedToken, ByteLevelModel, Encoding, Split

from tests.engine._encodings import ours, theirs


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_longest_token_bytes_equals_the_longest_of_tiktokens_vocabulary(name):
    reference = theirs(name)
    ordinary = max(map(len, reference.token_byte_values()))
    special = max(len(token.encode("utf-8")) for token in reference.special_tokens_set)
    assert ours(name)._longest_token_bytes == max(ordinary, special)


def _toy(**model) -> Encoding:
    ranks = {bytes([byte]): byte for byte in range(256)} | {b"abc": 256}
    return Encoding.from_model(ByteLevelModel("toy", vocabulary=ranks, pre_tokenizer=(Split(r"\S+"),), **model))


def _longest_decoded(encoding: Encoding) -> int:
    """The definition, one id at a time."""
    lengths = []
    for token in range(encoding.max_token_value + 1):
        try:
            lengths.append(len(encoding.decode_single_token_bytes(token)))
        except KeyError:
            pass
    return max(lengths)


@pytest.mark.parametrize(
    "model",
    [
        {},
        {"special_tokens": {"<|a special token longer than any rank|>": 300}},
        {"added_tokens": (AddedToken(id=257, content="an added token, longer than any rank", special=False),)},
        {"extra_decoder": {400: b"bytes only decoded, the longest of all here"}},
    ],
    ids=["ranks", "special", "added", "extra-decoder"],
)
def test_longest_token_bytes_counts_every_kind_of_token(model):
    encoding = _toy(**model)
    assert encoding._longest_token_bytes == _longest_decoded(encoding)


def test_the_service_bound_reads_it_without_sorting_the_vocabulary(monkeypatch):
    from tokend.service.token_sizes import decoded_bytes, longest_token_bytes

    encoding = _toy(special_tokens={"<|end|>": 300})

    def sorted_vocabulary():
        raise AssertionError("token_byte_values sorts the whole vocabulary (holding the GIL ~70 ms for o200k)")

    monkeypatch.setattr(encoding, "token_byte_values", sorted_vocabulary)
    assert longest_token_bytes(encoding) == 7  # b"<|end|>"
    assert decoded_bytes(encoding, [[256, 300]], enough=1 << 20) == 2 * 7
    assert decoded_bytes(encoding, [[256, 300]], enough=0) == len(encoding.decode_bytes([256, 300]))
