"""A GGUF file's chat template as the GGUF importer will publish it (`chat_format_from_gguf`): the template and
the special-token texts looked up from the ids GGUF stores; rendered, it gives transformers' ids."""

from __future__ import annotations

import pytest

from chat.conversations import conversation
from chat.hf_tokenizers import model_parts
from chat.templates import packaged_template
from tokend.errors import ModelFormatError
from tokend.registry.chat import ChatEncoder, build_chat_format, chat_format_from_gguf


def _llama31_metadata():
    """What a Llama 3.1 Instruct GGUF holds for its tokenizer (its real template; ids from the vocabulary)."""
    ranks, specials, _ = model_parts("llama3")
    tokens = ["?"] * (max(specials.values()) + 1)
    for text, token_id in specials.items():
        tokens[token_id] = text
    return {
        "tokenizer.chat_template": packaged_template("meta-llama-Llama-3.1-8B-Instruct.jinja"),
        "tokenizer.chat_template.plain": "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}",
        "tokenizer.ggml.tokens": tokens,
        "tokenizer.ggml.bos_token_id": specials["<|begin_of_text|>"],
        "tokenizer.ggml.eos_token_id": specials["<|eot_id|>"],
    }


def test_the_gguf_template_renders_transformers_ids(llama3_encoding, reference_tokenizer):
    spec = chat_format_from_gguf(_llama31_metadata())
    assert spec.variables == {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    assert spec.source == "GGUF tokenizer.chat_template"
    encoder = ChatEncoder(llama3_encoding, build_chat_format(spec))
    messages, tools = conversation("tool_calls")
    expected = reference_tokenizer("llama3.1-instruct").apply_chat_template(
        messages, tools=tools, tokenize=True, add_generation_prompt=True
    )
    assert encoder.encode_chat(messages, tools).ids == expected


def test_named_templates_and_files_without_one():
    metadata = _llama31_metadata()
    plain = chat_format_from_gguf(metadata, template_name="plain")
    assert plain.source == "GGUF tokenizer.chat_template.plain" and plain.variables["eos_token"] == "<|eot_id|>"
    with pytest.raises(ModelFormatError, match=r"no chat template named 'rag'; it has \['default', 'plain'\]"):
        chat_format_from_gguf(metadata, template_name="rag")
    assert chat_format_from_gguf({"tokenizer.ggml.tokens": ["a"]}) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer.ggml.bos_token_id": 10**9}, "bos_token_id = 1000000000 is not an id"),
        ({"tokenizer.chat_template": 7}, "is not text"),
        ({"tokenizer.chat_template": b"\xff"}, "is not UTF-8"),
        ({"tokenizer.chat_template": "{% for %}"}, "does not compile"),
    ],
)
def test_a_broken_template_or_id_is_a_model_format_error(change, message):
    with pytest.raises(ModelFormatError, match=message):
        chat_format_from_gguf({**_llama31_metadata(), **change})
