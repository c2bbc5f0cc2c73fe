"""Fixtures for the chat-format tests: tokend encodings and the reference renderers they are held to."""

from __future__ import annotations

import pytest

from chat.hf_tokenizers import hf_tokenizer, tokend_encoding
from chat.templates import LLAMA3_INSTRUCT_TEMPLATE, packaged_template


@pytest.fixture(scope="session")
def o200k_harmony():
    """o200k_harmony as tiktoken 0.14 defines it, built with tokend's engine.

    tiktoken maps both "<|endofprompt|>" and "<|reserved_200018|>" to 200018; tokend's Encoding requires
    distinct ids, so the alias "<|endofprompt|>" is left out (harmony never renders 200018). The registry's
    own o200k_harmony (branch byte-level-families) replaces this fixture once it lands.
    """
    import tiktoken

    import tokend
    from tokend.engine import O200K_PATTERN

    reference = tiktoken.get_encoding("o200k_harmony")
    specials = {token: token_id for token, token_id in reference._special_tokens.items() if token != "<|endofprompt|>"}
    return tokend.Encoding(
        "o200k_harmony",
        pat_str=O200K_PATTERN,
        mergeable_ranks=dict(tokend.get_encoding("o200k_base").mergeable_ranks),
        special_tokens=specials,
    )


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
