"""Binding a request's special-token policy costs what the caller listed, never a pass over the model's
special tokens (o200k_harmony has ~1,100: such a pass per request cost more than counting a short text)."""

from collections.abc import Iterator, Mapping

import pytest

import tokend
from tokend.errors import DisallowedSpecialTokenError
from tokend.service.special_policy import DEFAULT_POLICY, SpecialTokenPolicy


class _Specials(Mapping):
    """The model's special tokens, failing the test if anything walks all of them."""

    def __init__(self, tokens: dict[str, int]) -> None:
        self.tokens = tokens

    def __getitem__(self, key: str) -> int:
        return self.tokens[key]

    def __contains__(self, key: object) -> bool:
        return key in self.tokens

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("bind walked every special token of the model")

    def __len__(self) -> int:
        return len(self.tokens)


class _Model:
    def __init__(self, encoding) -> None:
        self.encoding = encoding
        self.special_tokens = _Specials(dict(encoding.special_tokens))

    @property
    def special_tokens_set(self):
        raise AssertionError("bind copied the model's special-token set")

    def __getattr__(self, name):
        return getattr(self.encoding, name)


@pytest.mark.parametrize("policy", [
    DEFAULT_POLICY,
    SpecialTokenPolicy(allowed=frozenset({"<|endoftext|>", "not special"})),
    SpecialTokenPolicy(allowed=frozenset({"<|endoftext|>"}), disallowed=frozenset({"<|startoftext|>", "foo"})),
    SpecialTokenPolicy(disallowed=frozenset()),
])
def test_binding_does_not_walk_the_models_special_tokens(policy):
    encoding = tokend.get_encoding("o200k_harmony")
    bound = policy.bind(_Model(encoding))
    assert bound.allowed_special == (policy.allowed if policy.allowed == "all" else policy.allowed & encoding.special_tokens_set)


def test_a_bound_policy_still_reports_the_leftmost_disallowed_string():
    encoding = tokend.get_encoding("cl100k_base")
    policy = SpecialTokenPolicy(disallowed=frozenset({"<|endoftext|>", "bad"}))
    with pytest.raises(DisallowedSpecialTokenError) as raised:
        policy.bind(encoding).apply(encoding.encode, "x <|endoftext|> bad")
    assert (raised.value.token, raised.value.offset) == ("<|endoftext|>", 2)
    with pytest.raises(DisallowedSpecialTokenError) as raised:
        policy.bind(encoding).apply(encoding.encode, "x bad <|endoftext|>")
    assert (raised.value.token, raised.value.offset) == ("bad", 2)


def test_too_many_other_strings_are_refused_with_the_least_as_example():
    # The least is found a slice at a time (one ``min`` over 100,000 strings held the GIL ~9 ms); it stays
    # the least of them all, whichever slice it is in.
    from tokend.service import InvalidRequest

    listed = {f"<|s{i:06d}|>" for i in range(9_000, 10_000)} | {f"<|s{i:06d}|>" for i in range(1_000, 9_000)}
    model = _Model(tokend.get_encoding("cl100k_base"))
    with pytest.raises(InvalidRequest) as raised:
        SpecialTokenPolicy(frozenset(), frozenset(listed | {"<|endoftext|>"})).bind(model)
    assert "9000 of the listed strings (e.g. '<|s001000|>')" in str(raised.value)
