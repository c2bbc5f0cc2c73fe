"""Fixtures for the chat-format tests: tokend encodings and the reference renderers they are held to."""

from __future__ import annotations

import pytest

from chat.hf_tokenizers import hf_tokenizer, tokend_encoding
from chat.templates import LLAMA3_INSTRUCT_TEMPLATE, packaged_template
from tokend.registry.chat import TemplateLimits

# For tests that hold two paths' answers equal (traced layouts against the full render). The full render
# reports `spans_exact` False by design when its prefix renders outrun their share of the 1 s default
# (template_format: PREFIX_TIME_SHARE), which a loaded CI machine can make happen on a short chat; the
# traced path renders no prefixes. A minute keeps that degradation out of such comparisons; the tests of
# the degradation itself pass their own limits.
UNHURRIED = TemplateLimits(seconds=60.0)


@pytest.fixture(scope="session")
def o200k_harmony():
    """o200k_harmony from the embedded default registry: tiktoken 0.14's definition, including both
    "<|endofprompt|>" and "<|reserved_200018|>" as 200018 (harmony never renders that id)."""
    import tokend

    return tokend.get_encoding("o200k_harmony")


@pytest.fixture(scope="session")
def llama3_encoding():
    return tokend_encoding("llama3")


@pytest.fixture(scope="session")
def qwen3_encoding():
    return tokend_encoding("qwen3")


TEMPLATES = {
    # name: (model, template source)
    "llama3-instruct": ("llama3", lambda: LLAMA3_INSTRUCT_TEMPLATE),
    "llama3.1-instruct": ("llama3", lambda: packaged_template("meta-llama-Llama-3.1-8B-Instruct.jinja")),
    "qwen3": ("qwen3", lambda: packaged_template("Qwen-Qwen3-0.6B.jinja")),
    "qwen2.5-instruct": ("qwen3", lambda: packaged_template("Qwen-Qwen2.5-7B-Instruct.jinja")),
}


@pytest.fixture(scope="session")
def reference_tokenizer():
    """(template name) -> transformers tokenizer with that template (built once per name)."""
    built = {}

    def get(name: str):
        if name not in built:
            model, source = TEMPLATES[name]
            built[name] = hf_tokenizer(model, source())
        return built[name]

    return get



@pytest.fixture(scope="session")
def mistral_encodings(tmp_path_factory):
    """mistral-common's shipped tokenizer files as the registry serves them: imported (format told from the
    file: Tekken or sentencepiece), then loaded; file name -> encoding."""
    from chat.mistral_files import imported_encodings

    yield from imported_encodings(tmp_path_factory.mktemp("mistral") / "models")


@pytest.fixture(scope="session")
def mistral_v3_sentencepiece(mistral_encodings):
    return mistral_encodings["mistral_instruct_tokenizer_240323.model.v3"]


@pytest.fixture(scope="module")
def template_encoders(reference_tokenizer):
    """(template name of TEMPLATES) -> (encoder with traced layouts, encoder without, the oracle tokenizer)."""
    from tokend.registry.chat import ChatEncoder, build_chat_format, chat_format_from_template

    built = {}

    def get(name):
        if name not in built:
            tokenizer = reference_tokenizer(name)
            spec = chat_format_from_template(tokenizer.chat_template, **tokenizer.special_tokens_map)
            encoding = tokend_encoding(TEMPLATES[name][0])
            full = ChatEncoder(encoding, build_chat_format(spec), ref=name)
            full.chat_format.layouts.enabled = False
            built[name] = (ChatEncoder(encoding, build_chat_format(spec), ref=name), full, tokenizer)
        return built[name]

    return get


@pytest.fixture(scope="module")
def cl100k_im():
    """cl100k_base with ChatML's two tokens, for templates written in tests."""
    import tokend

    base = tokend.get_encoding("cl100k_base")
    return tokend.Encoding(
        "cl100k_im", pat_str=base.pattern, mergeable_ranks=base.mergeable_ranks,
        special_tokens={**base.special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265},
    )  # fmt: skip
