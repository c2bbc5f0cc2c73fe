"""tiktoken's `allowed_special` / `disallowed_special` arguments → the API's SpecialTokenPolicy message."""

from __future__ import annotations

import pytest

from tokend_api.v1 import tokenizer_pb2 as pb
from tokend_api.policy_message import to_message as special_token_policy

Mode = pb.SpecialTokenSet


def test_tiktoken_defaults_allow_nothing_and_disallow_all():
    policy = special_token_policy(set(), "all")
    assert policy.allowed.mode == Mode.MODE_NONE and list(policy.allowed.tokens) == []
    assert policy.disallowed.mode == Mode.MODE_ALL and list(policy.disallowed.tokens) == []


@pytest.mark.parametrize("empty", [set(), (), [], frozenset()])
def test_empty_collections_are_mode_none(empty):
    policy = special_token_policy(empty, empty)
    assert (policy.allowed.mode, policy.disallowed.mode) == (Mode.MODE_NONE, Mode.MODE_NONE)


def test_listed_tokens_are_sent_sorted_whatever_the_collection_type():
    policy = special_token_policy({"<|fim_suffix|>", "<|endoftext|>"}, ["b", "a"])
    assert policy.allowed.mode == Mode.MODE_LISTED
    assert list(policy.allowed.tokens) == ["<|endoftext|>", "<|fim_suffix|>"]
    assert policy.disallowed.mode == Mode.MODE_LISTED
    assert list(policy.disallowed.tokens) == ["a", "b"]


def test_all_on_both_sides():
    policy = special_token_policy("all", "all")
    assert (policy.allowed.mode, policy.disallowed.mode) == (Mode.MODE_ALL, Mode.MODE_ALL)


def test_a_bare_token_string_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"allowed_special=\{'<\|endoftext\|>'\}"):
        special_token_policy("<|endoftext|>", "all")


def test_non_string_members_are_refused_naming_the_argument():
    with pytest.raises(TypeError, match="disallowed_special must contain strings"):
        special_token_policy(set(), [1])
