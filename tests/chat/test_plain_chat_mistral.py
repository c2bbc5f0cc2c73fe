"""count_chat's plain path for the mistral formats — alternating user/assistant strings after an optional
system prompt (and v7's system messages anywhere) counted in one native call, on SentencePiece (mistral-common's v1/v2/v3/v7 `.model` files) and on
Tekken — held to mistral-common's `encode_chat_completion` and to the general path (render, then count).

SentencePiece adds its word-start mark to every text piece on its own: "[INST] text [/INST]" (v1) or the
bare content (v2+) is one sentence per message, whitespace at its edges included. Hypothesis draws content
with spaces, newlines, Unicode whitespace, "▁" itself, special-token text and emoji at the edges.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.protocol.instruct.validator import ValidationMode
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from chat.mistral_files import DATA, MISTRAL_FILES
from chat.plain_paths import outcome, takes_general_path
from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format

PIECES = [
    "Hello", " world", "a", "7", ".", " ", "  ", "\n", "\n\n", "\t", "\u00a0", "\u3000", "\u2581", "\u2581\u2581", "é",
    "日本", "😀", "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[TOOL_CALLS]", "<unk>", "\x00",
]  # fmt: skip
CONTENT = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=5)), max_size=7).map("".join)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _alternating(size=6):
    """user/assistant turns alternating from a user's (what the plain path takes), maybe after a system message."""

    def build(system, contents):
        turns = [{"role": ["user", "assistant"][i % 2], "content": content} for i, content in enumerate(contents)]
        return turns if system is None else [{"role": "system", "content": system}, *turns]

    return st.tuples(st.none() | CONTENT, st.lists(CONTENT, min_size=1, max_size=size)).map(lambda t: build(*t))


@lru_cache(maxsize=None)
def _reference(file_name: str, mode: ValidationMode) -> MistralTokenizer:
    return MistralTokenizer.from_file(str(DATA / file_name), mode=mode)


def _mistral_common(file_name: str, messages) -> list[int] | None:
    """mistral-common's ids, or None when its validator refuses the chat (e.g. an empty assistant turn)."""
    mode = ValidationMode.finetuning if messages[-1]["role"] == "assistant" else ValidationMode.test
    try:
        return _reference(file_name, mode).encode_chat_completion(ChatCompletionRequest.from_openai(messages=messages)).tokens
    except Exception:  # noqa: BLE001  (its validator's errors have no common base)
        return None


def _encoder(encodings, file_name: str) -> ChatEncoder:
    version, _ = MISTRAL_FILES[file_name]
    return ChatEncoder(encodings[file_name], build_chat_format(builtin_chat_format("mistral", version=version)))


@SETTINGS
@pytest.mark.parametrize("file_name", sorted(MISTRAL_FILES))
@given(messages=_alternating())
@example(messages=[{"role": "user", "content": " \u2581 lead"}, {"role": "assistant", "content": "tail  "},
                   {"role": "user", "content": ""}])  # fmt: skip
@example(messages=[{"role": "system", "content": "Be brief. "}, {"role": "user", "content": " a"},
                   {"role": "assistant", "content": "b"}, {"role": "user", "content": ""}])  # fmt: skip
def test_plain_counts_equal_mistral_common(mistral_encodings, file_name, messages):
    encoder = _encoder(mistral_encodings, file_name)
    count = outcome(lambda: encoder.count_chat(messages))
    assert count == outcome(lambda: encoder._count_rendered(messages, None, True, "reference", None, True))
    expected = _mistral_common(file_name, messages)
    if expected is not None:  # (an empty assistant turn is refused by both)
        assert count.total == len(expected)
        assert encoder.encode_chat(messages).ids == expected


MIXED = st.one_of(
    st.builds(lambda role, content: {"role": role, "content": content},
              st.sampled_from(["system", "user", "user", "assistant", "assistant", "tool"]), CONTENT),
    st.just({"role": "assistant", "content": ""}),
    st.just({"role": "user", "content": None}),
    st.just({"role": "user", "content": "x", "name": "bob"}),
    st.just({"role": "tool", "content": "42", "tool_call_id": "abcdefghi"}),
)  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages=st.lists(MIXED, max_size=6),
    file_name=st.sampled_from(sorted(MISTRAL_FILES)),
    content_special_tokens=st.sampled_from(["reference", "text", "refuse"]),
    per_message=st.booleans(),
)
def test_plain_path_equals_the_general_path(mistral_encodings, messages, file_name, content_special_tokens, per_message):
    """Any chat — runs of one role, system messages, empty turns, tool results — counts the same with the
    plain path on as through the general path, or is refused with the same error."""
    encoder = _encoder(mistral_encodings, file_name)
    fast = outcome(lambda: encoder.count_chat(messages, content_special_tokens=content_special_tokens, per_message=per_message))
    general = outcome(lambda: encoder._count_rendered(messages, None, True, content_special_tokens, None, per_message))
    assert fast == general


PLAIN = [{"role": "user", "content": " Hi there "}, {"role": "assistant", "content": "Hello!  "},
         {"role": "user", "content": "Héllo 😀 again\n"}]  # fmt: skip


@pytest.mark.parametrize("file_name", sorted(MISTRAL_FILES))
def test_a_plain_chat_is_counted_without_rendering(mistral_encodings, monkeypatch, file_name):
    encoder = _encoder(mistral_encodings, file_name)
    expected = encoder.count_chat(PLAIN)
    assert len(_mistral_common(file_name, PLAIN)) == expected.total
    monkeypatch.setattr(encoder, "_count_rendered", lambda *arguments: pytest.fail("the general path was taken"))
    assert encoder.count_chat(PLAIN) == expected
    assert encoder.count_chat(PLAIN, add_generation_prompt=False) == expected
    system = [{"role": "system", "content": "Be brief."}, *PLAIN]  # v1-v3: the system prompt joins a user turn
    assert encoder.count_chat(system).total == len(_mistral_common(file_name, system))


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],  # merged into one turn
        [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}],  # v1-v3 put an empty user turn first
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}],  # refused
        [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}],  # v1-v3 move it into a user turn
        [{"role": "system", "content": "s"}, {"role": "system", "content": "t"}, {"role": "user", "content": "a"}],
        [{"role": "system", "content": "s"}],  # no user turn to join
        [{"role": "user", "content": "a"}, {"role": "tool", "content": "1", "tool_call_id": "abcdefghi"}],
        [],  # refused
    ],
)  # fmt: skip
def test_other_chats_take_the_general_path(mistral_encodings, monkeypatch, messages):
    encoder = _encoder(mistral_encodings, "mistral_instruct_tokenizer_240323.model.v3")
    assert takes_general_path(encoder, monkeypatch, messages, PLAIN)
