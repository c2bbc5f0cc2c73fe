"""Where a render's loops reach the messages (message_positions), the fallback of long chats' spans."""

from __future__ import annotations

import pytest

from tokend.registry.chat.message_positions import MessagePositions
from tokend.registry.chat.sandbox import TemplateLimits, compile_template, render_template
from tokend.registry.chat.template_format import candidate_boundaries

MESSAGES = [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"}]


def recorded(source: str, messages=None, **variables):
    messages = MESSAGES if messages is None else messages
    positions = MessagePositions(messages)
    text = render_template(compile_template(source), {"messages": messages, **variables}, TemplateLimits(), positions=positions)
    return text, positions


@pytest.mark.parametrize(
    "source",
    [
        "H{% for m in messages %}<{{ m.content }}>{% endfor %}T",
        # `loop.last` makes Jinja read an item ahead: the position is still taken when the body gets it
        "H{% for m in messages %}{% if loop.last %}{% endif %}<{{ m.content }}>{% endfor %}T",
        # a reversed scan first (Qwen3's last query), then the loop that renders
        "{% for m in messages[::-1] %}{% endfor %}H{% for m in messages %}<{{ m.content }}>{% endfor %}T",
    ],
    ids=["plain", "loop-last", "reversed-first"],
)
def test_the_candidates_are_where_the_rendering_loop_reached_each_message(source):
    text, positions = recorded(source)
    assert text == "H<S><u1><a1>T"
    assert positions.candidates() == [1, 4, 8, 12]


def test_a_loop_over_a_slice_places_the_messages_it_reaches():
    text, positions = recorded("{{ messages[0].content }}|{% for m in messages[1:] %}<{{ m.content }}>{% endfor %}")
    assert text == "S|<u1><a1>"
    assert positions.candidates() == [None, 2, 6, 10]


def test_a_list_holding_one_message_twice_is_not_followed():
    message = {"role": "user", "content": "x"}
    _, positions = recorded("{% for m in messages %}<{{ m.content }}>{% endfor %}", [message, message])
    assert positions.candidates() == [None, None, None]


def test_a_loop_cut_short_gives_no_end():
    _, positions = recorded("{% for m in messages %}{% if loop.index0 == 1 %}{% break %}{% endif %}<{{ m.content }}>{% endfor %}",
                            loopcontrols=True)
    assert positions.candidates() == [0, 3, None, None]


def test_the_prefix_work_grows_with_each_prefix():
    _, positions = recorded("{% for t in tools %}{{ t|tojson }}{% endfor %}{% for m in messages %}<{{ m.content }}>{% endfor %}",
                            tools=[{"name": "f"}] * 5)
    costs = positions.prefix_ticks(add_generation_prompt=True)
    assert len(costs) == len(MESSAGES) + 1
    assert 0 < costs[0] < costs[1] < costs[2] <= costs[3] == positions.total_ticks
    assert positions.prefix_ticks(add_generation_prompt=False)[-1] == 0  # that prefix is the whole: not rendered again


def test_a_candidate_inside_a_special_token_is_dropped():
    """The ids never depend on the spans: a boundary cutting a special token's text would split it."""
    text, positions = recorded("{% for m in messages %}{% if not loop.first %}_end|>{% endif %}{{ m.content }}<|im{% endfor %}")
    assert text == "S<|im_end|>u1<|im_end|>a1<|im"
    assert positions.candidates() == [0, 5, 17, 29]
    assert candidate_boundaries(text, positions, True, frozenset({"<|im_end|>"})) == [0, None, None, 29]
    assert candidate_boundaries(text, positions, False, frozenset({"<|im_end|>"})) == [0, None, None, len(text)]


def test_a_loop_that_writes_nothing_places_no_message():
    """A scan (Qwen3's search for the last user turn, forwards here) or a loop building the text in a namespace
    would put every message at one offset."""
    _, positions = recorded("H{% for m in messages %}{% if m.role == 'user' %}{% endif %}{% endfor %}"
                            "{% for m in messages %}<{{ m.content }}>{% endfor %}")
    assert positions.candidates() == [1, 4, 8, 12]
    text, positions = recorded("{% set ns = namespace(o='') %}{% for m in messages %}{% set ns.o = ns.o ~ m.content %}{% endfor %}"
                               "{{ ns.o }}")
    assert text == "Su1a1" and positions.candidates() == [None, None, None, None]
