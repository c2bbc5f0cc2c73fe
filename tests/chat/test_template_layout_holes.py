"""Adversarial checks of trace-specialised template layouts (template_trace, template_layout, template_count_plan):
a chat counted by a layout traced from another chat of the same shape must give what the full render gives
(the same format with layouts off) — ids, totals, per-message counts, spans, `spans_exact`, or the same error.

Two parts: named templates that once broke (or were the strongest attempts to break) the layouts, and a
hypothesis differential over small templates built from a grammar of the ways a template can look at content
(guards, strips, captures, namespaces, loop variables, lists and dicts holding content, filters, tests,
raise_exception), each drawn with several chats of one shape whose contents flip the guards.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.conftest import UNHURRIED
from tokend.errors import ChatRequestError, ChatTemplateError
from tokend.registry.chat import ChatEncoder, TemplateLimits
from tokend.registry.chat.template_format import TemplateChatFormat

_AROUND = "{{% for m in messages %}}<|im_start|>{{{{ m.role }}}}\n{body}<|im_end|>\n{{% endfor %}}"


def _pair(encoding, source):
    fast = ChatEncoder(encoding, TemplateChatFormat(source))
    full = ChatEncoder(encoding, TemplateChatFormat(source))
    full.chat_format.layouts.enabled = False
    return fast, full


def _outcome(encoder, chat, add_generation_prompt, limits, what):
    try:
        if what == "encode":
            return encoder.encode_chat(chat, add_generation_prompt=add_generation_prompt, limits=limits)
        return encoder.count_chat(chat, add_generation_prompt=add_generation_prompt, per_message=what == "per_message", limits=limits)
    except (ChatTemplateError, ChatRequestError) as error:
        return type(error).__name__, getattr(error, "reason", None)


def _assert_same(fast, full, chat, add_generation_prompt=True, limits=UNHURRIED):
    for what in ("total", "per_message", "encode"):
        assert _outcome(fast, chat, add_generation_prompt, limits, what) == _outcome(full, chat, add_generation_prompt, limits, what), (chat, what)


# -- holes found ---------------------------------------------------------------------------------------------

# A list or dict holding a content, whose size the sandbox checks (`[c] * n`, `ns.l + [c]`, `dict(a=c)`): the
# trace saw the marker's size, the layout's size bound counts no containers, so a chat with a long content was
# counted where its render stops at `max_chars`.
CONTAINERS = {
    "list_times": "{% set l = [m.content] * 10 %}{{ l|length }}{{ m.content }}",
    "list_times_unused": "{% set l = [m.content] * 10 %}{{ l|length }}",
    "tuple_times": "{% set l = (m.content, m.content) * 3 %}{{ l|length }}",
    "appended": "{% set ns = namespace(l=[]) %}{% for i in range(5) %}{% set ns.l = ns.l + [m.content] %}{% endfor %}{{ ns.l|length }}",
    "dict_call": "{% set d = dict(a=m.content, b=m.content, c=m.content) %}{{ d|length }}",
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_content_inside_a_sized_container_keeps_the_size_limit(cl100k_im, name):
    fast, full = _pair(cl100k_im, _AROUND.format(body=CONTAINERS[name]))
    limits = TemplateLimits(max_chars=3000, seconds=UNHURRIED.seconds)
    _assert_same(fast, full, [{"role": "user", "content": "hi"}], limits=limits)  # traced: short content fits
    long_chat = [{"role": "user", "content": "w" * 1500}]
    assert _outcome(full, long_chat, True, limits, "total") == ("ChatTemplateError", "size_limit")
    _assert_same(fast, full, long_chat, limits=limits)


# -- the strongest attempts that found nothing (kept as regressions) -------------------------------------------

ATTEMPTS = {
    "strip_eq": "{% if m.content.strip() == '' %}E{% else %}{{ m.content.strip() }}{% endif %}",
    "or_trimmed": "{{ (m.content|trim) or 'EMPTY' }}",
    "select_string": "{{ messages|map(attribute='content')|select('string')|list|length }}{{ m.content }}",
    "select_truth": "{{ messages|map(attribute='content')|select|list|length }}{{ m.content }}",
    "map_trim": "{% for c in messages|map(attribute='content')|map('trim') %}[{{ c }}]{% endfor %}",
    "sameas": "{% if messages[0].content is sameas messages[-1].content %}S{% endif %}{{ m.content }}",
    "namespace": "{% set ns = namespace(c='') %}{% set ns.c = m.content %}{% if ns.c == 'hi' %}H{% endif %}{{ ns.c }}",
    "namespace_compared": "{% set ns = namespace(c=messages[0].content) %}{% if ns.c == m.content %}SAME{% endif %}{{ m.content }}",
    "loop_last_trim": "{{ loop.index }}{% if loop.last %}L{{ m.content|trim }}{% else %}{{ m.content }}{% endif %}",
    "changed": "{% if loop.changed(m.content) %}C{% endif %}{{ m.content }}",
    "in_list": "{% if m.content in ['hi', 'x', ''] %}IN{% endif %}{{ m.content }}",
    "captured_padding": "{% set x %} {{ m.content }}{% endset %}{% if x %}T{% endif %}{{ x }}",
    "macro_trim": "{% macro q(t) %}{{ t|trim }}{% endmacro %}{% if q(m.content) == '' %}E{% endif %}{{ q(m.content) }}",
    "whole_messages_equal": "{% if messages[0] == messages[-1] %}EQ{% endif %}{{ m.content }}",
    "message_index": "{{ messages.index(m) }}{{ m.content }}",
    "escape_block": "{% autoescape true %}{{ m.content }}{% endautoescape %}",
    "private_attribute": "{% if m.content._pieces is defined %}D{% endif %}{{ m.content }}",
    "raise_on_blank": "{% if m.content|trim == '' %}{{ raise_exception('empty') }}{% endif %}{{ m.content }}",
    "percent": "{{ '%s' % m.content }}{% if ('%s' % m.content) == 'hi' %}H{% endif %}",
    "tilde_values": "{{ 1 ~ m.content ~ 2.5 ~ none ~ missing }}",
}
CONTENTS = ["hi", "hello there x!", "", "  padded  ", "\nnl", "x", " ", "\t\n", "a\u0301", "\u2028z\u2028", "\x1f y \x1c", "\x85k\x85", "\u3000j\u3000"]


@pytest.mark.parametrize("name", sorted(ATTEMPTS))
def test_content_questions_never_change_the_answer(cl100k_im, name):
    fast, full = _pair(cl100k_im, _AROUND.format(body=ATTEMPTS[name]))
    for shift in range(len(CONTENTS)):
        chat = [{"role": role, "content": CONTENTS[(shift + k) % len(CONTENTS)]} for k, role in enumerate(["user", "assistant", "user"])]
        _assert_same(fast, full, chat)


# -- a differential over templates drawn from a grammar --------------------------------------------------------

_VALUES = [
    "m.content", "m['content']", "m.get('content')", "m.content|trim", "m.content.strip()", "m.content|string",
    "m.content|default('D')", "'[' ~ m.content ~ ']'", "'(' + m.content + ')'", "m.content or 'EMPTY'",
    "m.content and 'YES'", "m.content.lstrip('\\n')", "m.content.rstrip('!')", "ns.c", "messages[0].content",
    "messages[-1].content", "loop.index", "m.role", "x", "(m.content|trim or '-')", "m.content|trim|trim",
    "messages|map(attribute='content')|select|list|length", "m.content[:2]", "m.content|length",
    "m.content|upper", "m.content.split()|length", "m.content|tojson", "[m.content]|first",
]  # fmt: skip
_CONDITIONS = [
    "'x' in m.content", "m.content.startswith('h')", "m.content.endswith(('!', '?'))", "m.content == 'hi'",
    "m.content != ''", "m.content", "not m.content", "m.content|trim", "m.content.strip() == ''",
    "m.content is string", "m.content is none", "m.content is defined", "loop.first", "loop.last",
    "messages|length > 2", "m.role == 'user'", "m.content in ['hi', 'x']", "(m.content|trim).startswith('<')",
    "ns.c == 'hi'", "ns.c", "x", "x == 'hi'", "'\\n' in m.content|trim", "m.content.lstrip() == m.content",
    "loop.previtem is defined and loop.previtem.content == m.content", "m.content|length > 3",
]  # fmt: skip
_TEXTS = ["", "A", "\n", " ", "<|im_end|>", "é", "<", "|>", "x"]


def _statement(depth=2):
    value = st.sampled_from(_VALUES)
    condition = st.sampled_from(_CONDITIONS)
    text = st.sampled_from(_TEXTS)
    leaves = [
        value.map(lambda v: "{{ " + v + " }}"),
        text,
        value.map(lambda v: "{% set ns.c = " + v + " %}"),
        value.map(lambda v: "{% set x = " + v + " %}"),
        st.tuples(text, value).map(lambda p: "{% set x %}" + p[0] + "{{ " + p[1] + " }}{% endset %}"),
        condition.map(lambda c: "{% if " + c + " %}{{ raise_exception('no') }}{% endif %}"),
    ]
    if depth:
        inner = st.lists(_statement(depth - 1), max_size=3).map("".join)
        leaves.append(st.tuples(condition, inner, inner).map(lambda p: "{% if " + p[0] + " %}" + p[1] + "{% else %}" + p[2] + "{% endif %}"))
    return st.one_of(*leaves)


_TEMPLATES = st.builds(
    lambda head, wrap, body, last, tail: (
        "{% set ns = namespace(c='') %}" + head + "{% for m in messages %}{% set x = '' %}" + wrap[0] + body + last + wrap[1]
        + "{% endfor %}{% if add_generation_prompt %}" + tail + "{% endif %}"
    ),
    st.sampled_from(["", "<|im_start|>system\n", "S:"]),
    # ChatML around each message most of the time: then a content ending before <|im_end|> is counted by the
    # engine walk (template_count_plan), not only by substitution
    st.sampled_from([("<|im_start|>{{ m.role }}\n", "<|im_end|>\n")] * 3 + [("", "")]),
    st.lists(_statement(), min_size=1, max_size=4).map("".join),
    st.sampled_from(["", "{{ m.content }}", "{{ m.content|trim }}", "{{ m.content.lstrip('\\n') }}"]),
    st.sampled_from(["", "<|im_start|>assistant\n", "A:", "{{ ns.c }}"]),
)
_PIECES = ["hi", "x", "h", "!", "?", "", " ", "\n", "<", "é", "a", "\u0301", "<|im_end|>", "im_end|>", "|>", "\t"]
_CONTENT = st.lists(st.sampled_from(_PIECES), max_size=4).map("".join)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(template=_TEMPLATES, roles=st.lists(st.sampled_from(["system", "user", "assistant"]), min_size=1, max_size=3),
       add_generation_prompt=st.booleans(), data=st.data())  # fmt: skip
def test_drawn_templates_count_as_their_full_render(cl100k_im, template, roles, add_generation_prompt, data):
    fast, full = _pair(cl100k_im, template)
    for _ in range(4):  # the first chat of the shape is traced; the others reuse its layout where guards hold
        chat = [{"role": role, "content": data.draw(_CONTENT)} for role in roles]
        _assert_same(fast, full, chat, add_generation_prompt)
