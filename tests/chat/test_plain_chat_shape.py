"""The plain-chat walk's `shape` (native/message_counts.c, engine/message_counts.py): the roles it expects, the
message each count goes to, the first-character guards. Held to its Python reference (the walk without a shape,
then those checks and moves in Python), and, through the template plans that use it
(registry/chat/template_count_plan.py), to the full render: a plan tried on a chat of another shape, or whose
contents answer a guard otherwise, must say "not mine" and leave the chat to the general path.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokend
from chat.conftest import TEMPLATES, UNHURRIED
from tokend.engine.message_counts import MessageLayout, message_counter

ROLES = ["user", "assistant", "system"]
LAYOUT = MessageLayout(roles={"user": ("user: ", 3, True), "assistant": ("\n", 1, True), "system": ("", 2, True)}, overhead=2)
CONTENT = st.lists(st.sampled_from(["Hello", " world", "", "\n", " ", "<", "é", "😀", "x", "a b"]), max_size=4).map("".join)
GUARD = st.one_of(st.none(), st.tuples(st.booleans(), st.text(alphabet="\n <Hxé😀", max_size=3)))


@pytest.fixture(scope="module")
def walk():
    return message_counter(tokend.get_encoding("cl100k_base"), LAYOUT)


def _reference(walk, messages, per_message, shape):
    """What the shape means, in Python: the walk without it, refused unless every message has its expected role
    and passes its guard, then each count moved to its owner."""
    roles, owners, guards = shape
    if len(roles) != len(messages):
        return None
    for index, message in enumerate(messages):
        if message["role"] != roles[index]:
            return None
        guard = guards[index] if guards is not None else None
        if guard is not None and (message["content"] == "" if guard[0] else False):
            return None
        if guard is not None and message["content"][:1] and message["content"][:1] in guard[1]:
            return None
    counted = walk(messages, per_message)
    if counted is None or not per_message:
        return counted
    total, counts = counted
    moved = list(counts)
    for index, owner in enumerate(owners if owners is not None else range(len(counts))):
        if owner != index:
            moved[owner] += moved[index]
            moved[index] = 0
    return total, moved


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_shape_equals_its_python_reference(walk, data):
    messages = data.draw(st.lists(st.builds(lambda role, content: {"role": role, "content": content},
                                            st.sampled_from(ROLES), CONTENT), min_size=1, max_size=6))  # fmt: skip
    n = len(messages)
    roles = data.draw(st.one_of(st.just(tuple(message["role"] for message in messages)),
                                st.lists(st.sampled_from(ROLES), min_size=n - 1, max_size=n + 1).map(tuple)))  # fmt: skip
    owners = data.draw(st.one_of(st.none(), st.lists(st.integers(0, n - 1), min_size=n, max_size=n).map(tuple)))
    guards = data.draw(st.one_of(st.none(), st.lists(GUARD, min_size=n, max_size=n).map(tuple)))
    if len(roles) != n:
        owners = guards = None  # (their length is checked only for a chat of the shape's length)
    for per_message in (True, False):
        assert walk(messages, per_message, (roles, owners, guards)) == _reference(walk, messages, per_message, (roles, owners, guards))


def test_a_malformed_shape_is_a_type_error(walk):
    chat = [{"role": "user", "content": "Hi"}]
    for shape in [(), ("user",), (("user",), None), ((1,), None, None), (("user",), (1,), None), (("user",), (-1,), None),
                  (("user",), ("0",), None), (("user",), None, ((1, 2),)), (("user",), None, ((True, 5),)), (("user",), (0, 0), None)]:  # fmt: skip
        with pytest.raises(TypeError):
            walk(chat, True, shape)
    assert walk(chat, True, None) == walk(chat, True)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_a_plan_kept_for_its_length_refuses_chats_of_another_shape(template_encoders, template):
    """The counter keeps the last quick plan by chat length and tries it first: chats of the same length with
    other roles, or contents that answer its first-character guards otherwise, must still count as rendered."""
    fast, full, _ = template_encoders(template)
    base = ["system", "user", "assistant", "user", "assistant", "user"]
    others = [["system", "user", "assistant", "user", "user", "user"], ["user", "assistant", "user", "assistant", "user", "assistant"]]
    contents = ["plain words", "\nleading newline", "", "<think>a</think>b", " x", "😀 ok"]
    for roles in [base, base, *others, base]:
        for shift in range(len(contents)):
            chat = [{"role": role, "content": contents[(index + shift) % len(contents)]} for index, role in enumerate(roles)]
            for add_generation_prompt in (True, False):
                for per_message in (True, False):
                    try:
                        expected = full.count_chat(chat, add_generation_prompt=add_generation_prompt, per_message=per_message, limits=UNHURRIED)
                    except Exception as error:  # the template refuses this chat: the fast counter must too
                        with pytest.raises(type(error)):
                            fast.count_chat(chat, add_generation_prompt=add_generation_prompt, per_message=per_message)
                        continue
                    assert fast.count_chat(chat, add_generation_prompt=add_generation_prompt, per_message=per_message, limits=UNHURRIED) == expected


def test_a_long_chat_keeps_its_counts(walk):
    """More messages than the walk keeps on its stack (64): the same answers as its reference."""
    messages = [{"role": ROLES[index % 3], "content": f"turn {index} " * (index % 5)} for index in range(150)]
    roles = tuple(message["role"] for message in messages)
    owners = tuple(index - 1 if index % 4 == 3 else index for index in range(150))
    guards = tuple((True, "<") if index % 5 == 1 else None for index in range(150))
    for shape in [(roles, owners, None), (roles, None, guards), (roles, owners, guards)]:
        expected = _reference(walk, messages, True, shape)
        assert walk(messages, True, shape) == expected
        assert expected is not None and sum(expected[1]) + 2 == expected[0]
