"""The chat format of a GGUF file: its `tokenizer.chat_template`, with the special tokens the template reads.

A GGUF file (llama.cpp's format) may carry a Jinja2 chat template in its metadata: `tokenizer.chat_template`
(the default) and named ones, `tokenizer.chat_template.NAME` (listed in `tokenizer.chat_templates`, e.g.
"tool_use", "rag"). Templates read the tokenizer's special-token texts (`bos_token`, `eos_token`, ...);
GGUF stores their ids (`tokenizer.ggml.bos_token_id`, ...) and the vocabulary (`tokenizer.ggml.tokens`),
so the texts are looked up there, as transformers does when it loads a GGUF tokenizer.

    >>> metadata = {"tokenizer.chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}",
    ...             "tokenizer.ggml.tokens": ["<unk>", "<s>", "</s>"], "tokenizer.ggml.bos_token_id": 1,
    ...             "tokenizer.ggml.eos_token_id": 2}
    >>> spec = chat_format_from_gguf(metadata)
    >>> spec.variables, spec.source
    ({'bos_token': '<s>', 'eos_token': '</s>'}, 'GGUF tokenizer.chat_template')
    >>> chat_format_from_gguf({"tokenizer.ggml.tokens": ["a"]}) is None      # no template in the file
    True

`metadata` is the file's key → value mapping as a GGUF reader gives it (strings, integers, arrays as
lists). The GGUF importer calls this and publishes the result as the version's chat format. Not handled
here: reading GGUF (the importer's), templates that need variables GGUF does not store (pass them to
`chat_format_from_template` yourself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokend.errors import ModelFormatError
from tokend.registry.chat.spec import ChatFormatSpec, chat_format_from_template

__all__ = ["chat_format_from_gguf", "GGUF_TEMPLATE_KEY", "GGUF_SPECIAL_TOKEN_KEYS"]

GGUF_TEMPLATE_KEY = "tokenizer.chat_template"
# Template variable -> the GGUF key of its token id (llama.cpp's spelling, "seperator" included).
GGUF_SPECIAL_TOKEN_KEYS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "sep_token": "tokenizer.ggml.seperator_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
    "cls_token": "tokenizer.ggml.cls_token_id",
    "mask_token": "tokenizer.ggml.mask_token_id",
}


def chat_format_from_gguf(metadata: Mapping[str, Any], *, template_name: str = "default") -> ChatFormatSpec | None:
    """The checked template spec of a GGUF file's metadata, None when it has no chat template.
    `template_name` picks a named template; a name the file does not have is a ModelFormatError listing
    the ones it has."""
    key = GGUF_TEMPLATE_KEY if template_name == "default" else f"{GGUF_TEMPLATE_KEY}.{template_name}"
    template = metadata.get(key)
    if template is None:
        if template_name == "default":
            return None
        names = sorted(name[len(GGUF_TEMPLATE_KEY) + 1 :] for name in metadata if name.startswith(GGUF_TEMPLATE_KEY + "."))
        raise ModelFormatError(f"the GGUF file has no chat template named {template_name!r}; it has {['default', *names]}")
    if isinstance(template, (bytes, bytearray)):
        try:
            template = bytes(template).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ModelFormatError(f"GGUF {key} is not UTF-8: {error}") from None
    if not isinstance(template, str):
        raise ModelFormatError(f"GGUF {key} is not text")
    tokens = metadata.get("tokenizer.ggml.tokens")
    variables: dict[str, str] = {}
    for variable, id_key in GGUF_SPECIAL_TOKEN_KEYS.items():
        token_id = metadata.get(id_key)
        if token_id is None:
            continue
        text = _token_text(tokens, token_id)
        if text is None:
            raise ModelFormatError(f"GGUF {id_key} = {token_id!r} is not an id of tokenizer.ggml.tokens")
        variables[variable] = text
    return chat_format_from_template(template, source=f"GGUF {key}", **variables)


def _token_text(tokens: Any, token_id: Any) -> str | None:
    if not isinstance(tokens, Sequence) or isinstance(tokens, (str, bytes)):
        return None
    if not isinstance(token_id, int) or isinstance(token_id, bool) or not 0 <= token_id < len(tokens):
        return None
    text = tokens[token_id]
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    return text if isinstance(text, str) else None
