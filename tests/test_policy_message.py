"""tokend_api.policy_message reads long token lists a slice at a time (so a server's other calls get the
GIL between slices): the set must be the same as reading them at once, at and around the slice size."""

from __future__ import annotations

import pytest

from tokend_api import policy_message
from tokend_api.policy_message import from_message, to_message


@pytest.mark.parametrize("count", [0, 1, 4095, 4096, 4097, 10_000])
def test_listed_tokens_are_read_whole(count) -> None:
    tokens = {f"<|t{index}|>" for index in range(count)} | ({"<|endoftext|>"} if count else set())
    allowed, disallowed = from_message(to_message(tokens or (), tokens or ()))
    assert allowed == disallowed == frozenset(tokens)
    assert policy_message._TOKENS_PER_SLICE == 4096  # the sizes above straddle it
