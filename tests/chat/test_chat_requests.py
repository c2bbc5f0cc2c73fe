"""Bad chat requests get precise errors naming the message index and the field; spans add up."""

from __future__ import annotations

import pickle

import pytest

import tokend
from chat.conversations import conversation
from chat.hf_tokenizers import tokend_encoding
from tokend.errors import ChatRequestError, ChatTemplateError, ModelFormatError
from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format, chat_format_from_template


@pytest.fixture(scope="module")
def chatml():
    return ChatEncoder(tokend_encoding("qwen3"), build_chat_format(builtin_chat_format("chatml")), ref="qwen3@1")


@pytest.fixture(scope="module")
def llama3():
    return ChatEncoder(tokend_encoding("llama3"), build_chat_format(builtin_chat_format("llama3")), ref="llama3@1")


@pytest.mark.parametrize(
    ("messages", "tools", "field", "words"),
    [
        ("hello", None, "messages", "list of message objects"),
        ([["user", "hi"]], None, "messages[0]", "object with a role"),
        ([{"content": "hi"}], None, "messages[0].role", "required"),
        ([{"role": "user", "content": 3}], None, "messages[0].content", "string, null or a list of text parts"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], None, "messages[0].content[0]", "only text parts"),
        ([{"role": "user", "content": [{"type": "text", "text": None}]}], None, "messages[0].content[0].text", "must be a string"),
        ([{"role": "user", "content": "x", "name": 5}], None, "messages[0].name", "non-empty string"),
        ([{"role": "user", "content": "x", "tool_calls": [{"function": {"name": "f"}}]}], None, "messages[0].tool_calls", "only assistant"),
        ([{"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}], None, "messages[0].tool_calls[0].function.name", "required"),
        ([{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {1, 2}}}]}], None,
         "messages[0].tool_calls[0].function.arguments", "JSON"),
        ([{"role": "robot", "content": "x"}], None, "messages[0].role", "not one of system, user, assistant, tool"),
        ([{"role": "user", "content": "x", "reasoning_content": "y"}], None, "messages[0].reasoning_content", "does not render"),
        ([{"role": "user", "content": "x"}], [{"name": "f"}], "tools[0]", "'type': 'function'"),
        ([{"role": "user", "content": "x"}], [{"type": "function", "function": {"name": "f", "parameters": []}}],
         "tools[0].function.parameters", "JSON-schema object"),
    ],
)
def test_errors_name_the_field(chatml, messages, tools, field, words):
    with pytest.raises(ChatRequestError) as caught:
        chatml.encode_chat(messages, tools)
    assert caught.value.field == field
    assert words in str(caught.value)
    assert str(caught.value).startswith(field)


def test_message_index_is_set(chatml):
    with pytest.raises(ChatRequestError) as caught:
        chatml.count_chat([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "pirate", "content": "c"}])
    assert caught.value.message_index == 2


def test_formats_without_tools_say_so(llama3):
    messages, tools = conversation("tool_calls")
    with pytest.raises(ChatRequestError, match="llama3 format has no tool definitions"):
        llama3.encode_chat(messages, tools)
    with pytest.raises(ChatRequestError) as caught:
        llama3.encode_chat(messages)
    assert caught.value.field == "messages[2].role" or caught.value.field == "messages[2].tool_calls"


def test_options_are_checked(chatml):
    with pytest.raises(ChatRequestError, match="add_generation_prompt"):
        chatml.encode_chat([], add_generation_prompt="yes")
    with pytest.raises(ChatRequestError, match="content_special_tokens"):
        chatml.encode_chat([], content_special_tokens="maybe")


def test_a_template_that_raises_gives_its_message():
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok"
    encoder = ChatEncoder(tokend.get_encoding("cl100k_base"), build_chat_format(chat_format_from_template(template)))
    with pytest.raises(ChatTemplateError) as caught:
        encoder.encode_chat([{"role": "assistant", "content": "x"}])
    assert caught.value.reason == "raised" and "first message must be from the user" in str(caught.value)
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.reason, str(copy)) == ("raised", str(caught.value))


def test_a_format_needs_its_special_tokens():
    with pytest.raises(ModelFormatError, match=r"needs the special tokens \['<\|im_end\|>', '<\|im_start\|>'\]"):
        ChatEncoder(tokend.get_encoding("cl100k_base"), build_chat_format(builtin_chat_format("chatml")), ref="cl100k_base@1")


def test_unknown_builtin_and_bad_options_are_model_format_errors():
    with pytest.raises(ModelFormatError, match="unknown chat format 'vicuna'"):
        builtin_chat_format("vicuna")
    with pytest.raises(ModelFormatError, match="version"):
        builtin_chat_format("mistral", version="v9")
    with pytest.raises(ModelFormatError, match="takes no options"):
        builtin_chat_format("llama3", flavour="x")


def test_spans_partition_the_messages_and_the_rest_is_the_formats(chatml):
    messages, tools = conversation("tool_calls")
    result = chatml.encode_chat(messages, tools)
    assert len(result.message_spans) == len(messages)
    previous_end = 0
    for start, end in result.message_spans:
        assert previous_end <= start <= end
        previous_end = end
    count = chatml.count_chat(messages, tools)
    assert count.per_message == result.message_counts
    assert count.total == len(result.ids) == sum(count.per_message) + count.format_overhead
    # consecutive tool results share one user turn: the second one's ids still belong to it
    texts = [chatml.encoding.decode(result.ids[start:end]) for start, end in result.message_spans]
    assert texts[3] == "<|im_start|>user\n<tool_response>\n" + messages[3]["content"] + "\n</tool_response><|im_end|>\n"


def test_count_without_per_message(chatml):
    messages, _ = conversation("long_chat")
    count = chatml.count_chat(messages, per_message=False)
    assert count.per_message == [] and count.total == len(chatml.encode_chat(messages).ids)
