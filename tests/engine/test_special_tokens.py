"""Special tokens, tiktoken's semantics exactly: every combination of allowed/disallowed against tiktoken."""

from __future__ import annotations

import itertools

import re

import pytest

from tokend.errors import DisallowedSpecialTokenError, TokendError

NOT_SPECIAL = "<|not_a_special_token|>"


def _policies(specials: list[str]):
    first = specials[0]
    last = specials[-1]
    allowed = [set(), frozenset(), "all", {first}, {last}, {first, last}, {NOT_SPECIAL}, {first, NOT_SPECIAL}, set(specials)]
    disallowed = ["all", (), set(), {first}, {last}, [first, last], {NOT_SPECIAL}, {"hello"}, {first, "hello"}, set(specials), {""}]
    return list(itertools.product(allowed, disallowed))


def _texts(specials: list[str]) -> list[str]:
    joined = " ".join(specials)
    return [
        "hello world",
        f"hello {specials[0]} world",
        f"{specials[-1]}hello{specials[0]}",
        f"say {NOT_SPECIAL} and {joined}",
        f"{specials[0]}{specials[0]}  \n",
        f"x  {specials[0][:-1]} partial {specials[0][1:]}",
        "",
    ]


def _run(function):
    try:
        return ("ok", function())
    except ValueError as exc:
        return ("raised", exc)


def test_every_combination_matches_tiktoken(enc, oracle):
    specials = sorted(oracle.special_tokens_set)
    assert set(specials) == enc.special_tokens_set
    checked = 0
    for text in _texts(specials):
        for allowed, disallowed in _policies(specials):
            ours = _run(lambda: enc.encode(text, allowed_special=allowed, disallowed_special=disallowed))
            theirs = _run(lambda: oracle.encode(text, allowed_special=allowed, disallowed_special=disallowed))
            context = (text, allowed, disallowed)
            assert ours[0] == theirs[0], context
            if ours[0] == "ok":
                assert ours[1] == theirs[1], context
                assert enc.count(text, allowed_special=allowed, disallowed_special=disallowed) == len(theirs[1])
            else:
                error = ours[1]
                assert isinstance(error, DisallowedSpecialTokenError) and isinstance(error, TokendError)
                assert repr(error.token) in str(theirs[1]), context
                assert text[error.offset : error.offset + len(error.token)] == error.token
                with pytest.raises(DisallowedSpecialTokenError):
                    enc.count(text, allowed_special=allowed, disallowed_special=disallowed)
            checked += 1
    assert checked == len(_texts(specials)) * len(_policies(specials))


def test_error_names_token_offset_and_fix(cl100k):
    text = "héllo <|endoftext|> world"
    with pytest.raises(DisallowedSpecialTokenError) as info:
        cl100k.encode(text)
    error = info.value
    assert (error.token, error.offset, error.item) == ("<|endoftext|>", 6, None)  # characters, not bytes
    message = str(error)
    assert "'<|endoftext|>'" in message and "allowed_special" in message and "disallowed_special=()" in message


def test_batch_error_names_item(cl100k):
    with pytest.raises(DisallowedSpecialTokenError) as info:
        cl100k.encode_batch(["fine", "also fine", "bad <|fim_prefix|>"])
    assert (info.value.item, info.value.token, info.value.offset) == (2, "<|fim_prefix|>", 4)
    with pytest.raises(DisallowedSpecialTokenError) as info:
        cl100k.count_batch(["<|endofprompt|>"])
    assert info.value.item == 0


def test_allowed_special_becomes_its_id(cl100k):
    assert cl100k.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [100257]
    assert cl100k.encode("a<|endofprompt|>", allowed_special="all") == [64, 100276]
    # Neither allowed nor disallowed: plain text (tiktoken's docstring example, cl100k ids).
    assert cl100k.encode("<|endoftext|>", disallowed_special=()) == [27, 91, 8862, 728, 428, 91, 29]


def test_string_policies_other_than_all_are_rejected(cl100k):
    with pytest.raises(TypeError, match="allowed_special"):
        cl100k.encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(TypeError, match="disallowed_special"):
        cl100k.encode("x", disallowed_special="<|endoftext|>")


@pytest.mark.parametrize("size", [1, 3, 5, 16, 40])
def test_special_token_set_never_misses_a_token(size):
    # Each way of checking (tokens themselves, 2-character prefixes then tokens, a prefix regex) must say
    # "maybe" whenever a token occurs, and may say "no" only when none does.
    from tokend.engine.special_tokens import SpecialTokenSet

    tokens = {f"<|tok{i}|>" for i in range(size)}
    if size > 3:
        tokens |= {f"[X{i}]" for i in range(size // 2)}
    tokens = frozenset(tokens)
    specials = SpecialTokenSet(tokens)
    for token in tokens:
        assert specials.may_occur(f"before {token} after")
        assert specials.may_occur(token)
    assert not specials.may_occur("plain text with < and | and [ but no token")
    assert not specials.may_occur("")
    if size > 3:  # a prefix without its token: the tokens themselves decide (up to 16 of them)
        assert specials.may_occur("<| not a token") == (len(tokens) > 16)


@pytest.mark.parametrize("kind", ["special_tokens", "added_tokens"])
def test_a_token_with_a_lone_surrogate_is_refused_when_the_encoding_is_built(kind):
    # tiktoken refuses it in its constructor (UnicodeEncodeError): the token could be encoded but never decoded.
    import tiktoken

    from tokend.engine import ByteLevelModel, Encoding, Split
    from tokend.engine.added_tokens import AddedToken
    from tokend.errors import ModelFormatError

    ranks = {bytes([byte]): byte for byte in range(256)}
    token = "<x\ud800>"
    with pytest.raises(ValueError):
        tiktoken.Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={token: 256})
    with pytest.raises(ModelFormatError, match="lone surrogate"):
        if kind == "special_tokens":
            Encoding("x", pat_str=r"\S+", mergeable_ranks=ranks, special_tokens={token: 256})
        else:
            added = (AddedToken(id=256, content=token, special=True),)
            Encoding.from_model(
                ByteLevelModel("x", vocabulary=ranks, pre_tokenizer=(Split(r"\S+"),), added_tokens=added)
            )


@pytest.mark.parametrize("token_id, fragment", [
    (2**40, "has the id of 13 digits; ids are whole numbers 0..4,294,967,294"),
    (2**32 - 1, "has the id 4294967295"),
    (-1, "has the id -1"),
    ("7", "has the id 7"),
    (400_000_000, "has the id 400,000,000, far past the vocabulary's 257 tokens"),
])
def test_special_token_ids_the_core_and_tables_cannot_hold_are_refused_by_name(token_id, fragment):
    # an id past 32 bits answered INTERNAL on every call once published; a sparse one made per-id tables of GBs
    from tokend.engine import Encoding
    from tokend.errors import ModelFormatError

    ranks = {bytes([byte]): byte for byte in range(256)}
    with pytest.raises(ModelFormatError, match=re.escape(fragment)):
        Encoding("bad", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={"<s>": token_id})


class _Blind(str):
    """A str subclass whose Python-level search methods find nothing (tiktoken reads its characters)."""

    def __contains__(self, item):
        return False

    def find(self, *args):
        return -1

    def startswith(self, *args):
        return False


def test_a_str_subclass_is_searched_by_its_characters_not_its_methods(enc, oracle):
    # Found by the issue-18 fuzzer (tests/engine/test_issue18_fuzz.py): `token in text` went through the
    # subclass's __contains__, and encode/count took a disallowed special token as text.
    for special in sorted(oracle.special_tokens_set):
        text = _Blind(f"a {special} b")
        with pytest.raises(ValueError):
            oracle.encode(text)
        with pytest.raises(DisallowedSpecialTokenError):
            enc.encode(text)
        with pytest.raises(DisallowedSpecialTokenError):
            enc.count(text)
        for allowed in ("all", {special}):
            expected = oracle.encode(text, allowed_special=allowed)
            assert enc.encode(text, allowed_special=allowed) == expected
            assert enc.count(text, allowed_special=allowed) == len(expected)
        expected = oracle.encode(text, disallowed_special=())
        assert enc.encode(text, disallowed_special=()) == expected
        with pytest.raises(ValueError):
            oracle.encode(text, disallowed_special={special})
        with pytest.raises(DisallowedSpecialTokenError):
            enc.encode(text, disallowed_special={special})
