"""The chat format a manifest carries (`ChatFormatSpec`), and turning it into a `ChatFormat`.

    {"chat_format": {"name": "chatml"}}
    {"chat_format": {"name": "mistral", "options": {"version": "v7"}}}
    {"chat_format": {"name": "harmony", "options": {"reasoning_effort": "high"}}}
    {"chat_format": {"name": "template", "template": "{% for message in messages %}...",
                     "variables": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
                     "source": "tokenizer_config.json (sha256 ...)"}}

    >>> builtin_chat_format("mistral", version="v3").describe()
    "mistral(version='v3')"
    >>> template = ("{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endfor %}"
    ...             "{% if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")
    >>> spec = chat_format_from_template(template, bos_token="<s>")     # a file: Path(...).read_text()
    >>> spec.name, spec.variables
    ('template', {'bos_token': '<s>'})
    >>> config = {"chat_template": template, "bos_token": "<s>", "eos_token": {"content": "</s>"}}
    >>> spec = chat_format_from_tokenizer_config(json.dumps(config).encode())   # a file: Path(...).read_bytes()
    >>> spec.variables, spec.source[:30]
    ({'bos_token': '<s>', 'eos_token': '</s>'}, 'tokenizer_config.json (sha256 ')
    >>> chat_format = build_chat_format(spec)
    >>> build_chat_format(ChatFormatSpec(name="template", template="{% for %}"))
    Traceback (most recent call last):
    tokend.errors.ModelFormatError: chat template does not compile: line 1: ...

A template's `variables` are what transformers passes besides the conversation: the tokenizer's special
tokens map (bos_token, eos_token, ...) and nothing else unless given. Built-in names: BUILTIN_CHAT_FORMATS.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

from tokend.errors import ChatRequestError, ModelFormatError
from tokend.registry.document_fields import FieldError, check_choice, check_json_object, check_str, from_document

if TYPE_CHECKING:
    from tokend.registry.chat.chat_format import ChatFormat

__all__ = [
    "ChatFormatSpec",
    "BUILTIN_CHAT_FORMATS",
    "build_chat_format",
    "builtin_chat_format",
    "chat_format_from_template",
    "chat_format_from_tokenizer_config",
    "MAX_TEMPLATE_CHARS",
]

ChatFormatName = Literal["harmony", "openai-chat", "chatml", "llama3", "mistral", "template"]
# name -> "module:class" of its renderer, imported when a model uses it (not on every manifest read).
BUILTIN_CHAT_FORMATS = {
    "harmony": "tokend.registry.chat.harmony:HarmonyFormat",
    "openai-chat": "tokend.registry.chat.openai_chat:OpenAIChatFormat",
    "chatml": "tokend.registry.chat.chatml:ChatmlFormat",
    "llama3": "tokend.registry.chat.llama3:Llama3Format",
    "mistral": "tokend.registry.chat.mistral:MistralFormat",
}
# Real templates are a few KB (the 71 llama.cpp ships: 16.7 KB at most); this bounds what a manifest can make every
# process compile when it loads the model. Compiling costs up to ~1 KB of memory and ~10 us per character (a
# template of macros, one `{% macro %}` per 41 characters): at 1,000,000 a manifest made each worker and the
# playground spend ~24 s and ~750 MiB-1 GiB (three of them past the prod overlay's 1536 Mi); at 128 Ki, ~1 s
# and ~126 MiB.
MAX_TEMPLATE_CHARS = 128 * 1024


@dataclass(frozen=True)
class ChatFormatSpec:
    """A named built-in format with its options, or a Jinja2 template with its variables."""

    name: ChatFormatName
    options: dict[str, Any] = field(default_factory=dict)  # built-ins only
    template: str | None = None  # name == "template" only
    variables: dict[str, Any] = field(default_factory=dict)  # template only: bos_token, eos_token, ...
    source: str | None = None  # where the template came from, for people

    def __post_init__(self) -> None:
        check_choice(self.name, "name", get_args(ChatFormatName))
        object.__setattr__(self, "options", check_json_object(self.options, "options"))
        check_str(self.template, "template", optional=True)
        object.__setattr__(self, "variables", check_json_object(self.variables, "variables"))
        check_str(self.source, "source", optional=True)
        if self.name == "template":
            if not self.template:
                raise FieldError("a template chat format needs its template text")
            if len(self.template) > MAX_TEMPLATE_CHARS:
                raise FieldError(f"the chat template has {len(self.template):,} characters (limit {MAX_TEMPLATE_CHARS:,})")
            if self.options:
                raise FieldError("options belong to built-in formats; a template takes variables")
        else:
            if self.template is not None or self.variables:
                raise FieldError(f"the built-in format {self.name!r} takes options, not a template or variables")

    @classmethod
    def from_document(cls, document: Any, *, where: str = "chat_format") -> ChatFormatSpec:
        names = tuple(item.name for item in dataclasses.fields(cls))
        return from_document(cls, document, known=names, required=("name",), where=where)

    def to_document(self) -> dict[str, Any]:
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}

    def describe(self) -> str:
        if self.name == "template":
            digest = hashlib.sha256(self.template.encode("utf-8")).hexdigest()[:12]  # type: ignore[union-attr]
            return f"template (sha256 {digest}…)"
        options = ", ".join(f"{key}={value!r}" for key, value in sorted(self.options.items()))
        return f"{self.name}({options})" if options else self.name


def build_chat_format(spec: ChatFormatSpec) -> ChatFormat:
    """The renderer a spec describes; bad options or a template that does not compile: ModelFormatError."""
    if spec.name == "template":
        from tokend.registry.chat.template_format import TemplateChatFormat  # Jinja2: only once a template is used

        return TemplateChatFormat(spec.template or "", spec.variables)
    module, _, name = BUILTIN_CHAT_FORMATS[spec.name].partition(":")
    try:
        return getattr(importlib.import_module(module), name)(**spec.options)
    except ChatRequestError as error:
        raise ModelFormatError(f"chat format {spec.describe()}: {error}") from None
    except TypeError:
        raise ModelFormatError(f"chat format {spec.name!r} takes no options {sorted(spec.options)}") from None


def builtin_chat_format(name: str, **options: Any) -> ChatFormatSpec:
    """The spec of a built-in format, checked: `builtin_chat_format("mistral", version="v7")`."""
    if name not in BUILTIN_CHAT_FORMATS:
        raise ModelFormatError(f"unknown chat format {name!r}; built-in formats: {', '.join(BUILTIN_CHAT_FORMATS)} (or a template)")
    spec = ChatFormatSpec(name=name, options=options)
    build_chat_format(spec)
    return spec


def chat_format_from_template(template: str, *, source: str | None = None, **variables: Any) -> ChatFormatSpec:
    """A template spec (e.g. from `--chat-template FILE` or GGUF `tokenizer.chat_template`), compiled once to check it."""
    try:
        spec = ChatFormatSpec(name="template", template=template, variables=variables, source=source)
    except ValueError as error:
        raise ModelFormatError(f"chat template: {error}") from None
    build_chat_format(spec)
    return spec


def _token_text(value: Any) -> str | None:
    # tokenizer_config.json writes a special token as its text or as an AddedToken object {"content": ...}.
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


_SPECIAL_TOKEN_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def chat_format_from_tokenizer_config(data: bytes, *, template_name: str = "default", source: str | None = None) -> ChatFormatSpec:
    """The chat format of a Hugging Face `tokenizer_config.json`: its `chat_template` (a string, or a list
    of named templates: `template_name` picks one, e.g. "tool_use") and its special tokens map."""
    try:
        config = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFormatError(f"tokenizer_config.json is not JSON: {error}") from None
    if not isinstance(config, dict) or "chat_template" not in config:
        raise ModelFormatError("tokenizer_config.json has no chat_template")
    template = config["chat_template"]
    if isinstance(template, list):
        named = {item.get("name"): item.get("template") for item in template if isinstance(item, dict)}
        if template_name not in named:
            raise ModelFormatError(f"tokenizer_config.json has no chat template named {template_name!r}; it has {sorted(map(str, named))}")
        template = named[template_name]
    if not isinstance(template, str):
        raise ModelFormatError("tokenizer_config.json's chat_template is not text")
    variables: dict[str, Any] = {}
    for key in _SPECIAL_TOKEN_KEYS:
        text = _token_text(config.get(key))
        if text is not None:
            variables[key] = text
    extra = config.get("additional_special_tokens")
    if isinstance(extra, list):
        variables["additional_special_tokens"] = [text for text in map(_token_text, extra) if text is not None]
    source = source or f"tokenizer_config.json (sha256 {hashlib.sha256(data).hexdigest()})"
    return chat_format_from_template(template, source=source, **variables)
