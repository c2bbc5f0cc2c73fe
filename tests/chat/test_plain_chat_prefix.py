"""The plain-chat walk counts a role's fixed text once and each content alone where the split provably cuts
between them (engine/newline_boundary: a prefix ending in "\\n", a content that is empty or starts with
neither whitespace nor one of the pattern's joining characters). Held to the reference libraries, with
contents that start exactly where the rule must say no: whitespace of every kind, "/" (o200k's
` ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*` takes it after a newline), contractions ("'s" right after the prefix),
digits, combining marks, emoji, empty content.

Oracles: tiktoken (`encode_ordinary` of prefix + content) for the walk on cl100k_base / o200k_base /
r50k_base; transformers' apply_chat_template for chatml (Qwen 3), llama3 and the Qwen3 / Llama 3.1
templates; openai-harmony for harmony's developer message ("# Instructions\\n\\n" + the system content).
"""

from __future__ import annotations

import pytest
import tiktoken
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import tokend
from chat.conftest import UNHURRIED
from chat.harmony_oracle import render as harmony_render
from tokend.engine.message_counts import ROLE_PREFIX_APART, MessageLayout, message_counter
from tokend.engine.newline_boundary import newline_joining, separable_after
from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format

# What a content may start with: each kind of character the rule distinguishes, and ordinary ones.
STARTS = [
    "", " ", "  ", "\n", "\n\n", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x85", "\u00a0", "\u1680", "\u2003",
    "\u2028", "\u202f", "\u3000", "/", "//", "/usr", "'s", "'S", "'ll", "'", "7", "123456", ".", ":\n", "!?", "-", "#",
    "<", "é", "e\u0301", "\u0301", "ǅ", "日本", "😀", "👩‍👩‍👧", "Hello", "hello", "A",
]  # fmt: skip
REST = ["", "Hello", " world", "s", "/x", "\n", "\n\n", " ", "7", "😀", "'s", "é", " 日本", "\t"]
CONTENT = st.tuples(st.sampled_from(STARTS), st.lists(st.one_of(st.sampled_from(REST), st.text(max_size=4)), max_size=4)).map(
    lambda parts: parts[0] + "".join(parts[1])
)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Prefixes of the shapes the formats give (role + "\n", "\n\n", a header ending in a blank line), and ones
# whose last piece could reach into the content: punctuation right before the newline ("x:\n" + "/" is one
# o200k piece), spaces before it, several newlines.
PREFIXES = {"user": "user\n", "blank": "\n\n", "header": "# Instructions\n\n", "colon": "x:\n", "spaced": "a \n",
            "newlines": "a\n\n\n", "bare": "\n", "label": "Name: ", "none": ""}  # fmt: skip
NEWLINE_ENDED = {role for role, prefix in PREFIXES.items() if prefix.endswith("\n")}


def _walk(encoding):
    layout = MessageLayout(roles={role: (prefix, 0, True) for role, prefix in PREFIXES.items()})
    return message_counter(encoding, layout)


@pytest.mark.parametrize("name, joining", [("cl100k_base", ""), ("o200k_base", "/"), ("r50k_base", None)])
def test_the_rule_applies_to_the_patterns_argued_for(name, joining):
    encoding = tokend.get_encoding(name)
    assert newline_joining(encoding) == joining
    roles = _walk(encoding).args[0]
    apart = {role for role, entry in roles.items() if len(entry) == 7 and entry[4] & ROLE_PREFIX_APART}
    assert apart == (NEWLINE_ENDED if joining is not None else set())


@SETTINGS
@given(role=st.sampled_from(sorted(PREFIXES)), content=CONTENT, name=st.sampled_from(["cl100k_base", "o200k_base", "r50k_base"]))
@example(role="user", content="\nHello", name="cl100k_base")  # "\n\n" is one piece, one token
@example(role="colon", content="/ hi", name="o200k_base")  # ":\n/" is one piece
@example(role="blank", content="Hi", name="r50k_base")  # GPT-2's "\n\n" alone is one token, before "Hi" two
@example(role="user", content="\u00a0x", name="o200k_base")
@example(role="user", content="\u3000x", name="cl100k_base")
@example(role="user", content="'s", name="cl100k_base")
@example(role="user", content="", name="o200k_base")
@example(role="label", content="Hi", name="cl100k_base")
def test_walk_counts_equal_tiktoken(role, content, name):
    encoding, reference = tokend.get_encoding(name), tiktoken.get_encoding(name)
    counted = _walk(encoding)([{"role": role, "content": content}], True)
    expected = len(reference.encode_ordinary(PREFIXES[role] + content))
    assert counted == (expected, [expected])


@pytest.mark.parametrize(
    "name, prefix, content",
    [("cl100k_base", "user\n", "\nHello"), ("cl100k_base", "\n\n", "\nHi"), ("cl100k_base", "user\n", "\t\nx"),
     ("o200k_base", "x:\n", "/ hi"), ("o200k_base", "user\n", " \nx"), ("r50k_base", "\n\n", "Hi")],
)  # fmt: skip
def test_the_guarded_cases_are_the_ones_counting_apart_gets_wrong(name, prefix, content):
    """Each case the rule refuses really splits differently apart: the guard is needed, not just cautious."""
    reference = tiktoken.get_encoding(name)
    whole = len(reference.encode_ordinary(prefix + content))
    assert whole != len(reference.encode_ordinary(prefix)) + len(reference.encode_ordinary(content))
    assert not separable_after(prefix, content, newline_joining(tokend.get_encoding(name)))


def test_a_forbidden_string_across_the_prefix_end_keeps_the_text_joined(cl100k_im):
    """Content is looked at alone when counted apart, so a forbidden string that could begin in the prefix
    ("\\n<|" here) keeps that role joined, and one inside the prefix leaves the role to the joined text."""
    layout = MessageLayout(roles={"a": ("x\n", 0, True), "b": ("y\n", 0, True), "c": ("<|z\n", 0, True)}, forbidden=("\n<|", "<|"))
    counter = message_counter(cl100k_im, layout)
    roles = counter.args[0]
    assert len(roles["a"]) == 3 and len(roles["c"]) == 3
    assert counter([{"role": "a", "content": "<|im_start|>"}], True) is None  # "\n<|" found across the join
    assert counter([{"role": "c", "content": "Hi"}], True) is None
    # the chosen rule is exact where it applies
    reference = tiktoken.get_encoding("cl100k_base")
    expected = len(reference.encode_ordinary("y\nHi"))
    assert counter([{"role": "b", "content": "Hi"}], True) == (expected, [expected])


# -- the formats, against their reference renderers -------------------------------------------------------


def _chats(roles, first_roles=None):
    message = lambda roles: st.builds(lambda role, content: {"role": role, "content": content}, st.sampled_from(roles), CONTENT)  # noqa: E731
    return st.tuples(message(first_roles or roles), st.lists(message(roles), max_size=4)).map(lambda chat: [chat[0], *chat[1]])


def _held_to_transformers(encoder, tokenizer, messages, add_generation_prompt):
    # UNHURRIED: a template's per-message counts come from the walk, the traced layout or the full render, whose
    # spans degrade by design when its prefix renders outrun their time share (chat.conftest)
    expected = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    count = encoder.count_chat(messages, None, add_generation_prompt, limits=UNHURRIED)
    assert count.total == len(expected)
    assert count.per_message == encoder.encode_chat(messages, None, add_generation_prompt, limits=UNHURRIED).message_counts
    assert encoder.count_chat(messages, None, add_generation_prompt, per_message=False, limits=UNHURRIED).total == len(expected)


@pytest.fixture(scope="module")
def builtin(qwen3_encoding, llama3_encoding, o200k_harmony):
    formats = {"chatml": qwen3_encoding, "llama3": llama3_encoding, "harmony": o200k_harmony}
    return {name: ChatEncoder(encoding, build_chat_format(builtin_chat_format(name))) for name, encoding in formats.items()}


def test_the_formats_count_their_prefixes_apart(builtin):
    """The built-in layouts get the rule (else the tests below would hold the joined path only)."""
    for name, role in (("chatml", "user"), ("llama3", "user"), ("harmony", "system")):
        encoder = builtin[name]
        encoder.count_chat([{"role": "user", "content": "Hi"}])
        counter = encoder._counters[(True, "reference")]
        roles = counter.args[1] if name == "harmony" else counter.args[0]
        assert roles[role][4] & ROLE_PREFIX_APART, name


@SETTINGS
@given(messages=_chats(["system", "user"], ["system", "user", "assistant"]), add_generation_prompt=st.booleans())
@example(messages=[{"role": "user", "content": "\nHi"}, {"role": "system", "content": " x"}], add_generation_prompt=True)
def test_chatml_equals_transformers(builtin, reference_tokenizer, messages, add_generation_prompt):
    _held_to_transformers(builtin["chatml"], reference_tokenizer("qwen3"), messages, add_generation_prompt)


@SETTINGS
@given(messages=_chats(["system", "user", "assistant"]), add_generation_prompt=st.booleans())
def test_llama3_equals_transformers(builtin, reference_tokenizer, messages, add_generation_prompt):
    _held_to_transformers(builtin["llama3"], reference_tokenizer("llama3-instruct"), messages, add_generation_prompt)


@SETTINGS
@given(messages=_chats(["user", "assistant"], ["system", "developer"]), add_generation_prompt=st.booleans())
@example(messages=[{"role": "system", "content": "/usr"}, {"role": "user", "content": "Hi"}], add_generation_prompt=True)
@example(messages=[{"role": "developer", "content": "\u2028x"}], add_generation_prompt=False)
def test_harmony_developer_message_equals_openai_harmony(builtin, messages, add_generation_prompt):
    encoder = builtin["harmony"]
    expected = harmony_render(messages, None, add_generation_prompt)
    count = encoder.count_chat(messages, None, add_generation_prompt)
    assert count.total == len(expected)
    assert count.per_message == encoder.encode_chat(messages, None, add_generation_prompt).message_counts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=_chats(["user", "assistant"], ["system", "user"]), add_generation_prompt=st.booleans(),
       name=st.sampled_from(["qwen3", "llama3.1-instruct"]))  # fmt: skip
def test_templates_equal_transformers(template_encoders, messages, add_generation_prompt, name):
    encoder, _, tokenizer = template_encoders(name)
    for _ in range(2):  # the first count traces the chat's shape, the second takes the walk
        _held_to_transformers(encoder, tokenizer, messages, add_generation_prompt)


@pytest.mark.parametrize(
    "entry",
    [("user", 0, True, "", ROLE_PREFIX_APART, 1, ""), ("user\n", 0, True, "x", ROLE_PREFIX_APART, 2, ""),
     ("user\n", 0, True, "", ROLE_PREFIX_APART, -1, ""), ("user\n", 0, True, "", ROLE_PREFIX_APART)],
)  # fmt: skip
def test_the_walk_refuses_the_flag_where_the_rule_cannot_hold(entry):
    """A prefix without a final newline, a suffix, negative tokens, or no (prefix_tokens, joining): the walk
    raises instead of counting apart (the flag is message_counter's to set, on the rule's conditions)."""
    core = tokend.get_encoding("cl100k_base")._core
    with pytest.raises((ValueError, TypeError)):
        core.count_messages({"user": entry}, None, (), False, 0, None, None, [{"role": "user", "content": "Hi"}], True)


def test_a_prefix_the_normalizer_would_change_stays_joined():
    """With an NFC model the walk checks the content alone when apart, so a prefix that is not NFC itself
    keeps its role joined (whose whole text fails the check: the general path counts it)."""
    from chat.hf_tokenizers import hf_tokenizer, tokend_encoding_from_file
    from chat.templates import packaged_template

    encoding = tokend_encoding_from_file("qwen3-nfc")
    oracle = hf_tokenizer("qwen3-nfc", packaged_template("Qwen-Qwen3-0.6B.jinja"))  # transformers, the same file
    assert encoding.normalizer == "NFC" and newline_joining(encoding) is not None
    counter = message_counter(encoding, MessageLayout(roles={"nfd": ("e\u0301\n", 0, True), "nfc": ("\u00e9\n", 0, True)}))
    roles = counter.args[0]
    assert len(roles["nfd"]) == 3 and roles["nfc"][4] & ROLE_PREFIX_APART
    assert counter([{"role": "nfd", "content": "Hi"}], True) is None
    expected = len(oracle.encode("\u00e9\nHi", add_special_tokens=False))
    assert counter([{"role": "nfc", "content": "Hi"}], True) == (expected, [expected])
