"""count_chat's plain path on a model with a normalizer: Qwen 3 as it publishes its tokenizer.json (NFC, and
<tool_call> ... </think> as added tokens that are not special), read by tokend's importer and by transformers.

Which is exact: the walk counts the text as given, so it runs when the text of a message is already NFC (the
normalizer then changes nothing; `unicodedata.is_normalized`, called only for text with a code point from
U+0100 up) and hands any other chat to the general path. Normalising the contents first would not be exact
in general: NFC of "role\\n" + content is not "role\\n" + NFC(content) when content starts with a combining
mark that composes with the prefix's last character (it cannot after "\\n", but a layout's prefix or suffix
may end in a letter, "<", "=", ">").  The oracle is transformers' apply_chat_template with Qwen3's template.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chat.hf_tokenizers import hf_tokenizer, tokend_encoding_from_file
from chat.templates import packaged_template
from tokend.engine.message_counts import MessageLayout, message_counter
from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format

# NFC pieces (ASCII, Latin-1, CJK, emoji, Hangul syllables) and pieces NFC changes: a compatibility ideograph,
# e + combining acute, the Angstrom sign, conjoining jamo, a reordered pair of combining marks.
NFC_PIECES = ["Hello", " world", "\n", "  ", "é", "日本", "😀", "한국", "ā", "\u0301", "<think>", "</think>", "<tool_call>",
              "<|im_end|>", "<|fim_prefix|>"]  # fmt: skip
NOT_NFC = ["\uf902", "e\u0301", "\u212b", "\u1100\u1161", "a\u0323\u0307", "\u0958"]
CONTENT = st.lists(st.one_of(st.sampled_from(NFC_PIECES + NOT_NFC), st.text(max_size=4)), max_size=8).map("".join)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def qwen3_nfc():
    encoding = tokend_encoding_from_file("qwen3-nfc")
    assert encoding.normalizer == "NFC" and any(not token.special for token in encoding.added_tokens)
    return encoding


@pytest.fixture(scope="module")
def chatml(qwen3_nfc):
    return ChatEncoder(qwen3_nfc, build_chat_format(builtin_chat_format("chatml")))


@pytest.fixture(scope="module")
def oracle():
    return hf_tokenizer("qwen3-nfc", packaged_template("Qwen-Qwen3-0.6B.jinja"))


def _chats():
    message = st.builds(lambda role, content: {"role": role, "content": content}, st.sampled_from(["system", "user", "assistant"]), CONTENT)
    return st.lists(message, min_size=1, max_size=5)


@SETTINGS
@given(messages=_chats(), add_generation_prompt=st.booleans())
@example(messages=[{"role": "user", "content": "\uf902 caf\u00e9 e\u0301"}], add_generation_prompt=True)
@example(messages=[{"role": "user", "content": "\u0301x"}, {"role": "user", "content": "ā 日本"}], add_generation_prompt=True)
def test_counts_equal_transformers(chatml, oracle, messages, add_generation_prompt):
    expected = oracle.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    count = chatml.count_chat(messages, None, add_generation_prompt)
    assert count.total == len(expected)
    assert count == chatml._count_rendered(messages, None, add_generation_prompt, "reference", None, True)
    assert chatml.encode_chat(messages, None, add_generation_prompt).ids == expected


def test_nfc_text_takes_the_walk_and_other_text_the_general_path(chatml, oracle, monkeypatch):
    plain = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo 日本 😀 ā"}]
    expected = chatml.count_chat(plain)
    assert expected.total == len(oracle.apply_chat_template(plain, tokenize=True, add_generation_prompt=True))
    taken = []
    general = chatml._count_rendered
    monkeypatch.setattr(chatml, "_count_rendered", lambda *arguments: taken.append(1) or general(*arguments))
    assert chatml.count_chat(plain) == expected
    assert not taken
    for content in ["caf" + "e\u0301", "\uf902", "say <think> here", "a <tool_call> b"]:  # not NFC; an added token
        messages = [{"role": "user", "content": content}]
        assert chatml.count_chat(messages).total == len(oracle.apply_chat_template(messages, tokenize=True, add_generation_prompt=True))
    assert len(taken) == 4


def test_the_walk_checks_the_joined_text_not_the_content_alone(qwen3_nfc):
    """"\\u0301" alone is NFC, and so is "e"; "e" + "\\u0301" is not: a prefix ending in a letter must send a
    content starting with a combining mark to the general path."""
    assert unicodedata.is_normalized("NFC", "\u0301") and not unicodedata.is_normalized("NFC", "e\u0301")
    count = message_counter(qwen3_nfc, MessageLayout({"user": ("name", 0, True)}))
    assert count([{"role": "user", "content": "\u0301 x"}], True) is None
    tokens = qwen3_nfc.count_ordinary("name\u00e9 x")
    assert count([{"role": "user", "content": "\u00e9 x"}], True) == (tokens, [tokens])
    # normalising the content alone first ("\u0301 x" is NFC) and counting as given would encode "name\u0301 x";
    # the model normalises the whole text to "nam\u00e9 x", other tokens
    as_given = qwen3_nfc._core.encode("name" + unicodedata.normalize("NFC", "\u0301 x"))
    assert as_given != qwen3_nfc.encode_ordinary("name\u0301 x") == qwen3_nfc.encode_ordinary("nam\u00e9 x")
    assert count([{"role": "user", "content": "x <think>"}], True) is None  # a non-special added token
