"""The service layer's encode/count send runs of texts to the engine's batch calls a chunk at a time
(`run_text_batch`): the same answers as tiktoken, item for item, and the same errors as one text at a time
(a bad item in the middle of a chunk is named by its index, whatever policy refused it), with the call's
deadline checked between chunks. No server needed."""

from __future__ import annotations

import pytest
import tiktoken

from tests.corpus import corpus_texts
from tokend.registry import Registry
from tokend.service import Limits, ServedModels, SpecialTokenPolicy, TokenizerService
from tokend.service.batch import CHUNK_CHARS, CHUNK_ITEMS, run_text_batch
from tokend.service.errors import BatchItemError, DeadlineExpired

_TEXTS = [text for text in corpus_texts(limit_bytes=400_000) if "<|" not in text]


@pytest.fixture(scope="module")
def service() -> TokenizerService:
    return TokenizerService(ServedModels(Registry.open()), Limits(max_batch_items=4096, max_request_bytes=16 << 20))


def test_encode_and_count_match_tiktoken_across_chunks(service):
    oracle = tiktoken.get_encoding("cl100k_base")
    inputs: list[str | bytes] = _TEXTS[:300] + [b"raw \xff bytes"] + _TEXTS[300:] + ["x" * (CHUNK_CHARS + 5)]
    assert len(inputs) > CHUNK_ITEMS  # several chunks, and one text above a chunk's size alone
    expected = [oracle.encode_ordinary(item) if isinstance(item, str) else oracle._encode_bytes(item) for item in inputs]
    encoded = service.encode("cl100k_base", inputs)
    assert encoded.ids == expected and encoded.total_tokens == sum(map(len, expected))
    assert service.count("cl100k_base", inputs).counts == [len(ids) for ids in expected]


@pytest.mark.parametrize(
    "policy, bad, fragment",
    [
        (SpecialTokenPolicy(), "a <|endoftext|> b", "<|endoftext|>"),  # a disallowed special token
        (SpecialTokenPolicy(frozenset(), frozenset({"forbidden"})), "a forbidden word", "forbidden"),  # another string
    ],
)
def test_a_bad_item_inside_a_chunk_is_named_by_index(service, policy, bad, fragment):
    inputs = _TEXTS[:40] + [bad] + _TEXTS[40:80]
    for operation in (service.encode, service.count):
        with pytest.raises(BatchItemError) as refused:
            operation("cl100k_base", inputs, special=policy)
        assert refused.value.index == 40 and refused.value.field == "inputs[40]"
        assert fragment in str(refused.value.__cause__)


def test_allowed_special_tokens_in_a_chunk(service):
    oracle = tiktoken.get_encoding("cl100k_base")
    inputs = [text + "<|endoftext|>" for text in _TEXTS[:50]]
    policy = SpecialTokenPolicy(allowed="all")
    assert service.encode("cl100k_base", inputs, special=policy).ids == oracle.encode_batch(inputs, allowed_special="all")


class _Deadline:
    """time_remaining() from a list, one value per check (then plenty)."""

    def __init__(self, remaining):
        self.remaining = list(remaining)

    def time_remaining(self):
        return self.remaining.pop(0) if self.remaining else 5.0

    def is_active(self):
        return True


def test_the_deadline_is_checked_between_chunks():
    seen: list[list[str]] = []

    def many(texts: list[str]) -> list[int]:
        seen.append(texts)
        return [len(text) for text in texts]

    items = ["a"] * (CHUNK_ITEMS + 10)
    with pytest.raises(DeadlineExpired) as expired:
        run_text_batch(items, len, many, call=_Deadline([5.0, 0.0]))
    assert len(seen) == 1 and len(seen[0]) == CHUNK_ITEMS  # the second chunk was never started
    assert (expired.value.completed, expired.value.total) == (CHUNK_ITEMS, CHUNK_ITEMS + 10)
    assert run_text_batch(["ab", b"c", "d", "ef"], len, many, call=None) == [2, 1, 1, 2]
