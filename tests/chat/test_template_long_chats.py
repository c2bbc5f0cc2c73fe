"""Per-message spans of long template chats (issue 13): an agentic chat of hundreds of messages with tools
gets its ids and per-message counts within the template's time, not a time limit.

The oracle: transformers' apply_chat_template on the published templates (chat/templates.py) — the ids of
the whole, and the per-message boundaries as its definition gives them: message k starts where the render of
`messages[:k]` ends, unknown where that render is not the start of the whole (an unknown boundary merges the
message into the one before it; message 0's is then the start of the text). A chat whose prefix renders
would cost too much (template_format: MAX_PREFIX_TICKS) reports `spans_exact` False, and then every boundary
the definition knows must still be where tokend puts it.
"""

from __future__ import annotations

import time

import pytest

from chat.conftest import UNHURRIED
from chat.conversations import TOOLS
from tokend.registry.chat import message_positions, template_format, template_layout
from tokend.registry.chat.template_format import TemplateChatFormat
from tokend.registry.chat.template_limits import TemplateLimits

LONG = 300
LONG_TEMPLATES = ["qwen3", "qwen2.5-instruct", "llama3.1-instruct"]


def agentic_chat(count: int, with_tools: bool = True) -> list[dict]:
    """A system prompt, then rounds of: a user request, an assistant tool call, the tool's answer, the
    assistant's reply (without tools: a user request and the reply)."""
    messages = [{"role": "system", "content": "You are an agent. Use the tools."}]
    round_number = 0
    while len(messages) < count:
        messages.append({"role": "user", "content": f"Step {round_number}: what is the weather in city {round_number}?"})
        if with_tools:
            call = {"name": "get_weather", "arguments": {"location": f"City {round_number}, France", "unit": "celsius"}}
            messages.append({"role": "assistant", "content": f"Looking up city {round_number}.",
                             "tool_calls": [{"id": f"call{round_number:05d}", "type": "function", "function": call}]})
            messages.append({"role": "tool", "tool_call_id": f"call{round_number:05d}", "content": f"{round_number % 30} °C, clear"})
        messages.append({"role": "assistant", "content": f"City {round_number}: {round_number % 30} degrees."})
        round_number += 1
    return messages[:count]


def prefix_boundaries(tokenizer, messages, tools, add_generation_prompt) -> tuple[str, list[int | None]]:
    """transformers' rendered text and the definition's boundaries: len(render(messages[:k])) when that is a
    prefix of the whole, else None; the last entry is where the last message ends."""
    whole = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=add_generation_prompt)
    boundaries: list[int | None] = []
    for k in range(len(messages) + 1):
        if k == len(messages) and not add_generation_prompt:
            boundaries.append(len(whole))
            continue
        try:
            prefix = tokenizer.apply_chat_template(messages[:k], tools=tools, tokenize=False, add_generation_prompt=False)
        except Exception:  # the template refuses the unfinished conversation
            boundaries.append(None)
            continue
        boundaries.append(len(prefix) if whole.startswith(prefix) else None)
    if boundaries[0] is None:
        boundaries[0] = 0  # the documented rule for message 0
    return whole, boundaries


def text_boundaries(encoder, result) -> list[int]:
    """Where each message's ids start in the text, and where the last one's end."""
    ends = [start for start, _ in result.message_spans] + [result.message_spans[-1][1]]
    return [len(encoder.encoding.decode(result.ids[:end])) for end in ends]


@pytest.fixture(scope="module")
def long_chats(template_encoders):
    """(template, with tools) -> (messages, tools, encoder, transformers' ids, text and boundaries), built once."""
    built = {}

    def get(template: str, with_tools: bool = True):
        if (template, with_tools) not in built:
            encoder, _, tokenizer = template_encoders(template)
            messages, tools = agentic_chat(LONG, with_tools), TOOLS if with_tools else None
            ids = tokenizer.apply_chat_template(messages, tools=tools, tokenize=True, add_generation_prompt=True)
            built[template, with_tools] = (messages, tools, encoder, ids, *prefix_boundaries(tokenizer, messages, tools, True))
        return built[template, with_tools]

    return get


@pytest.mark.parametrize("with_tools", [True, False], ids=["tools", "plain"])
@pytest.mark.parametrize("template", LONG_TEMPLATES)
def test_a_long_chat_gets_its_spans_within_the_template_time(long_chats, template, with_tools):
    """300 messages: the prefix renders alone took 1.4 s (Qwen3 with tools), past the default 1 s, and the chat
    was refused with a time limit, ids and total included. The work bound (MAX_PREFIX_TICKS) sends them to the
    loops, not the time, so they get UNHURRIED: at 1 s a loaded machine could stop the whole's render (~40 ms).
    With the bound lifted, 3 of these 6 and the linear-work guard below fail."""
    messages, tools, encoder, expected_ids, text, boundaries = long_chats(template, with_tools)
    result = encoder.encode_chat(messages, tools, limits=UNHURRIED)
    assert result.ids == expected_ids and result.text == text
    assert not result.spans_exact  # too many prefixes to render: the boundaries are the loops', not proved
    ours = text_boundaries(encoder, result)
    known = [(k, boundary) for k, boundary in enumerate(boundaries) if boundary is not None]
    assert len(known) > LONG // 2
    assert [(k, ours[k]) for k, _ in known] == known  # every boundary the definition knows is where tokend puts it
    assert ours == sorted(ours)
    count = encoder.count_chat(messages, tools, limits=UNHURRIED)
    assert count.total == len(expected_ids) and count.per_message == result.message_counts and not count.spans_exact


@pytest.mark.parametrize("template", LONG_TEMPLATES)
def test_a_chat_whose_prefix_renders_fit_keeps_the_definition(template_encoders, template):
    """Within the prefix renders' budget the spans are the definition's, merged where it knows no boundary."""
    encoder, _, tokenizer = template_encoders(template)
    messages = agentic_chat(41)
    text, boundaries = prefix_boundaries(tokenizer, messages, TOOLS, True)
    result = encoder.encode_chat(messages, TOOLS, limits=UNHURRIED)  # (a loaded machine's 1 s: spans by the loops)
    assert result.text == text
    assert result.spans_exact == all(boundary is not None for boundary in boundaries)
    expected = []  # message k's text: from its boundary to the next one known (empty when its own is unknown)
    for k in range(len(messages)):
        following = next(boundary for boundary in boundaries[k + 1 :] if boundary is not None)
        expected.append((boundaries[k], following) if boundaries[k] is not None else None)
    ours = text_boundaries(encoder, result)
    spans = [(ours[k], ours[k + 1]) if result.message_spans[k][0] < result.message_spans[k][1] else None for k in range(len(messages))]
    assert spans == expected


def test_spans_past_the_time_share_come_from_the_loops(monkeypatch, template_encoders):
    """Prefix renders that would not fit their share of the time left (a loaded worker), or run out of it (here
    the empty chat's), leave the spans to the loops, and the chat is answered."""
    monkeypatch.setattr(template_format, "PREFIX_TIME_SHARE", 0.0)
    encoder, _, tokenizer = template_encoders("qwen2.5-instruct")
    messages = agentic_chat(12)
    text, boundaries = prefix_boundaries(tokenizer, messages, TOOLS, True)
    result = encoder.encode_chat(messages, TOOLS)
    assert result.text == text and result.ids == tokenizer.apply_chat_template(messages, tools=TOOLS, tokenize=True, add_generation_prompt=True)
    assert not result.spans_exact
    assert text_boundaries(encoder, result)[1:] == boundaries[1:]  # Qwen2.5's loop: where its prefixes end


def _rendered_lengths(monkeypatch) -> list[int]:
    """The number of messages of every render TemplateChatFormat makes from here on, in order."""
    rendered: list[int] = []
    original = TemplateChatFormat._render

    def counting(self, messages, *args, **kwargs):
        rendered.append(len(messages))
        return original(self, messages, *args, **kwargs)

    monkeypatch.setattr(TemplateChatFormat, "_render", counting)
    return rendered


def test_the_work_of_per_message_spans_grows_linearly(monkeypatch, template_encoders):
    """A generous complexity guard: the messages rendered for a chat's spans, 300 against 900 messages (it
    was one render per prefix: 9 times the work for 3 times the messages)."""
    encoder = template_encoders("qwen3")[0]
    rendered = _rendered_lengths(monkeypatch)
    work = {}
    for count in (300, 900):
        rendered.clear()
        encoder.count_chat(agentic_chat(count), TOOLS, limits=TemplateLimits(seconds=120))
        work[count] = sum(rendered)
    assert work[900] <= 4 * work[300], work


@pytest.mark.parametrize("with_tools", [True, False], ids=["tools", "plain"])
def test_prefix_renders_are_priced_against_the_calls_deadline_when_it_comes_first(monkeypatch, template_encoders, with_tools):
    """The prefix renders get a share of the time the render of the whole left, and a render stops at the call's
    deadline (`hard_deadline`) when that comes before the template's: so does their share. Before, it was taken
    of the template's time alone (here 120 s, against a call with 4 s left), the prefix renders of 600 messages
    (seconds of them) were started and ran to the call's deadline: with tools the call had nothing left for its
    answer, a plain chat's trace left its full render nothing and the chat was refused with a time limit. A
    generous complexity guard: nothing but the whole and the empty chat is rendered."""
    for module in (message_positions, template_layout):  # the time share decides, not the work bound
        monkeypatch.setattr(module, "MAX_PREFIX_TICKS", 10**12)
    encoder = template_encoders("qwen3")[0]
    rendered = _rendered_lengths(monkeypatch)
    messages = agentic_chat(600, with_tools)
    # 4 s: the whole's render (85-194 ms here) has 20-40 times its time; the prefix renders (estimated 13-17 s
    # at the same pace, on any machine) do not fit their 2 s share
    limits = TemplateLimits(seconds=120, hard_deadline=time.monotonic() + 4.0)
    count = encoder.count_chat(messages, TOOLS if with_tools else None, limits=limits)
    assert len(count.per_message) == len(messages) and not count.spans_exact
    assert set(rendered) <= {0, len(messages)}, sorted(set(rendered))[:5]
