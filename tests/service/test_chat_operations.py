"""The chat operations of the service layer (`encode_chat`, `count_chat`): the registry's results, limits,
deadlines and every failure kind as `describe` reports it. Exactness of the formats: tests/chat."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from support.chat_models import CONVERSATIONS, build_chat_registry
from support.gil_holder import gil_held
from tokend.errors import ChatFormatNotSetError
from tokend.registry import Registry
from tokend.service import (
    ChatConversation,
    DeadlineExpired,
    ErrorKind,
    InvalidRequest,
    Limits,
    RequestLimitExceeded,
    ServedModels,
    TokenizerService,
    describe,
    recording,
)
from tokend.service.admission import WorkAdmission
from tokend.service.chat import (
    MAX_CHAT_DEPTH,
    MAX_CHAT_MESSAGES,
    ENTRY_BYTES,
    MAX_CHAT_TOOLS_BYTES,
    MESSAGE_BYTES,
    PART_BYTES,
    SCALAR_BYTES,
    chat_working_bytes,
    conversation_bytes,
)
from tokend_api import Reason


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return Registry.open(build_chat_registry(tmp_path_factory.mktemp("chat") / "registry"))


@pytest.fixture(scope="module")
def service(registry):
    return TokenizerService(ServedModels(registry), Limits())


def _conversations(*names):
    return [ChatConversation(*CONVERSATIONS[name]) for name in names]


class Call:
    """A call with `seconds` left (what grpc.ServicerContext offers the batch loop)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def time_remaining(self) -> float:
        return self.deadline - time.monotonic()

    def is_active(self) -> bool:
        return True


def _failure(call, *args, **kwargs):
    with pytest.raises(Exception) as raised:
        call(*args, **kwargs)
    failure = describe(raised.value)
    assert failure is not None, f"{type(raised.value).__name__} is not an error of the service: {raised.value}"
    return failure


def test_encode_and_count_are_the_loaded_models(service, registry):
    conversations = _conversations("short", "system_and_turns", "tool_call")
    with recording() as record:
        encoded = service.encode_chat("chatml", conversations)
    model = registry.load("chatml")
    expected = [model.encode_chat(c.messages, c.tools, c.add_generation_prompt) for c in conversations]
    assert encoded.results == expected
    assert (encoded.model.name, encoded.model.version) == ("chatml", 1)
    assert encoded.total_tokens == sum(len(result.ids) for result in expected)
    assert (record.operation, record.items, record.tokens) == ("encode_chat", 3, encoded.total_tokens)
    assert record.input_bytes == sum(map(conversation_bytes, conversations))
    counted = service.count_chat("chatml", conversations)
    assert [result.total for result in counted.results] == [len(result.ids) for result in expected]
    assert [result.per_message for result in counted.results] == [result.message_counts for result in expected]
    assert service.count_chat("chatml", conversations, per_message=False).results[0].per_message == []


def test_openai_chat_counts_out_of_the_box_and_refuses_ids(service):
    counted = service.count_chat("o200k_base", _conversations("system_and_turns"))
    assert counted.results[0].estimate and counted.results[0].format_overhead == 3
    failure = _failure(service.encode_chat, "o200k_base", _conversations("short"))
    # As locally: the conversation is checked first, then the format says it has no ids.
    assert failure.field == "conversations[0].model" and failure.reason is Reason.CHAT_REQUEST_ERROR
    assert "use count_chat" in failure.message


def test_a_message_problem_names_the_conversation_message_and_field(service):
    bad_call = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "", "arguments": "{}"}}]}
    conversations = _conversations("short", "short") + [ChatConversation([{"role": "user", "content": "x"}, bad_call])]
    failure = _failure(service.count_chat, "chatml", conversations)
    assert failure.kind is ErrorKind.INVALID_INPUT and failure.reason is Reason.CHAT_REQUEST_ERROR
    assert failure.field == "conversations[2].messages[1].tool_calls[0].function.name"
    assert failure.metadata == {"item": 2, "message_index": 1, "field": "messages[1].tool_calls[0].function.name"}
    assert failure.message.startswith("conversations[2].messages[1].tool_calls[0].function.name: is required")
    role = _failure(service.encode_chat, "chatml", [ChatConversation([{"role": "robot", "content": "beep"}])])
    assert role.field == "conversations[0].messages[0].role" and "system, user, assistant, tool" in role.message
    tools = _failure(service.count_chat, "chatml", [ChatConversation([{"role": "user", "content": "x"}], [{"type": "web"}])])
    assert tools.field == "conversations[0].tools[0]"


def test_a_template_that_raises_is_invalid_input_with_its_message(service):
    failure = _failure(service.encode_chat, "templated", [ChatConversation([{"role": "robot", "content": "beep"}])])
    assert failure.kind is ErrorKind.INVALID_INPUT and failure.reason is Reason.CHAT_TEMPLATE_ERROR
    assert failure.field == "conversations[0]" and failure.metadata["template_failure"] == "raised"
    assert "robots may not speak: beep" in failure.message
    failed = _failure(service.count_chat, "templated", [ChatConversation([{"role": "user", "content": None}])])
    assert failed.kind is ErrorKind.INVALID_INPUT and failed.metadata["template_failure"] == "failed"


@pytest.mark.parametrize(
    ("content", "limit_name"),
    [("spin", "chat_template_seconds"), ("grow", "chat_template_max_chars"), ("hoard", "chat_template_max_chars")],
)
def test_a_template_at_its_limits_is_limit_exceeded_stating_the_limit(service, content, limit_name):
    started = time.monotonic()
    conversations = _conversations("short") + [ChatConversation([{"role": "user", "content": content}])]
    failure = _failure(service.count_chat, "templated", conversations)
    assert time.monotonic() - started < 10  # the template's own bound (1 s), with room for a busy machine
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.reason is Reason.CHAT_TEMPLATE_ERROR
    assert (failure.limit_name, failure.field, failure.metadata["item"]) == (limit_name, "conversations[1]", 1)
    # hoard: the service's held limit for a small conversation, 2 x max_chars + 4 bytes per input byte
    # spin: its 1 s of CPU time, or on a machine too busy to give it that its 4 s of wall time (both say "1 s")
    expected = {"spin": "longer than 1 s", "grow": "limit 16,777,216", "hoard": "bytes for one render"}[content]
    assert expected in failure.message
    if content == "hoard":
        longest = max(conversation_bytes(conversation) for conversation in conversations)
        assert f"limit {2 * (16 << 20) + 4 * longest:,} bytes" in failure.message


def test_a_render_kept_off_the_cpu_by_the_workers_other_threads_is_not_refused_for_it(service):
    """The template's bound is the CPU time its renders spend, not the wall time they take: a conversation that
    renders ~0.1-0.2 s of CPU (four "brief" messages) while another thread of the worker holds the GIL ~100 ms
    of every ~105 ms for 1.5 s (as a loaded worker or machine does: probe30 saw 10,000-message Qwen 3 chats refused
    at 1.03-1.10 s of wall time for 0.55-0.64 s of CPU) is answered. With a wall-clock second it was
    RESOURCE_EXHAUSTED chat_template_seconds."""
    conversation = ChatConversation([{"role": "user", "content": "brief"}] * 4)
    alone = service.count_chat("templated", [conversation], per_message=False).results[0].total
    # (held 100 ms at a time: at 50, a warm process's render, ~0.13 s of CPU, got through in 0.94-0.98 s)
    with gil_held(seconds=1.5, hold_seconds=0.1):
        started, cpu = time.monotonic(), time.thread_time()
        counted = service.count_chat("templated", [conversation], per_message=False)
        wall, cpu = time.monotonic() - started, time.thread_time() - cpu
    assert counted.results[0].total == alone
    assert wall > 1.0 > cpu, (wall, cpu)  # wall time past the second, CPU time within it


def test_a_spinning_template_kept_off_the_cpu_still_stops_at_its_wall_clock_bound(service):
    """A template that spins gets ~1/10 of a core here, so its 1 s of CPU would take ~10 s: it stops at the
    wall-clock bound of its renders (4 s: template_limits.WALL_TIME_FACTOR), the message saying which bound."""
    started = time.monotonic()
    with gil_held(seconds=6.0):
        failure = _failure(service.count_chat, "templated", [ChatConversation([{"role": "user", "content": "spin"}])])
        stopped = time.monotonic() - started
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.limit_name == "chat_template_seconds"
    assert "ran longer than 1 s: 4 s of wall time" in failure.message, failure.message
    assert 3.9 < stopped < 10


def test_a_request_of_many_conversations_kept_off_the_cpu_stops_at_its_share_of_wall_time(service):
    """Each conversation alone may take WALL_TIME_FACTOR times its CPU bound in wall time; a request's renders
    together get that factor of the request's share (1 s and 5 ms a conversation after the first) from its first
    render, so a request of many conversations that a busy worker keeps off the CPU no longer holds its handler
    thread for the sum of theirs."""
    # "brief": ~0.03-0.05 s of CPU, rendered every time, ~14-21 times as long in wall time beside a holder of 100
    # ms at a time: 16 of them are 0.5-0.8 s of CPU, within the request's 1.075 s, and 7-16 s of wall time, past
    # its 4.3 s (before, answered once the holder stopped)
    conversation = ChatConversation([{"role": "user", "content": "brief"}])
    started = time.monotonic()
    with gil_held(seconds=8.0, hold_seconds=0.1):
        failure = _failure(service.count_chat, "templated", [conversation] * 16, per_message=False)
        stopped = time.monotonic() - started
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.limit_name == "chat_template_seconds"
    assert "this request's template time: 1.075 s for its 16 conversation(s) together" in failure.message
    assert "4x that of wall time from its first render" in failure.message, failure.message
    assert stopped < 7.5, stopped  # 4.3 s of wall time from the first render, and a tick to notice


def test_a_template_refused_because_the_worker_renders_enough_calls_is_unavailable(service, monkeypatch):
    """Past render_turns.MAX_RENDER_CALLS calls rendering at once, a call is refused at once: UNAVAILABLE (retry:
    the worker is full, the call is not at fault), naming the conversation and the reason."""
    from tokend.registry.chat.render_turns import RENDER_TURNS

    # with tools: rendered in full every time (a plain chat may be answered from a layout traced before, no render)
    conversation = ChatConversation([{"role": "user", "content": "x"}], [{"type": "function", "function": {"name": "f"}}])
    monkeypatch.setattr(RENDER_TURNS, "max_calls", 0)
    failure = _failure(service.count_chat, "templated", [conversation])
    assert failure.kind is ErrorKind.UNAVAILABLE and failure.reason is Reason.CHAT_TEMPLATE_ERROR
    assert failure.field == "conversations[0]" and failure.metadata["template_failure"] == "busy"
    assert "0 calls of this worker already render chat templates or wait to; retry shortly" in failure.message
    monkeypatch.undo()
    assert service.count_chat("templated", [conversation]).results


@pytest.mark.parametrize("operation", ["count_chat", "encode_chat"])
def test_a_request_keeps_its_render_place_from_its_first_render_to_its_last(service, monkeypatch, operation):
    """A request of several conversations took a place among the worker's rendering calls (render_turns,
    MAX_RENDER_CALLS) for each conversation and gave it back after it: when other calls took every place
    meanwhile, its next conversation was refused "busy" (UNAVAILABLE) after the work of the ones before. It keeps
    the place its first render took until its last conversation is done."""
    from tokend.registry.chat.render_turns import RENDER_TURNS

    chat = service.models.load("templated").chat
    render = getattr(type(chat), operation)

    def then_every_place_taken(self, *args, **kwargs):
        result = render(self, *args, **kwargs)
        monkeypatch.setattr(RENDER_TURNS, "max_calls", RENDER_TURNS.calls)  # other calls took the free places
        return result

    monkeypatch.setattr(type(chat), operation, then_every_place_taken)
    # with tools: rendered in full every time (a plain chat may be answered from a layout traced before, no render)
    conversation = ChatConversation([{"role": "user", "content": "x"}], [{"type": "function", "function": {"name": "f"}}])
    answered = getattr(service, operation)("templated", [conversation] * 3)
    assert len(answered.results) == 3
    assert RENDER_TURNS.calls == 0  # given back at the request's end


def test_the_calls_deadline_bounds_a_template_and_is_reported_as_the_deadline(service):
    started = time.monotonic()
    with pytest.raises(DeadlineExpired):
        service.count_chat("templated", [ChatConversation([{"role": "user", "content": "spin"}])], call=Call(0.3))
    assert time.monotonic() - started < 5


def test_a_requests_template_share_is_charged_with_rendering_only(service, monkeypatch):
    """A request's conversations share 1 s + 5 ms each of template time, spent by their renders alone:
    here each conversation's work after its render (tokenizing a large one, or waiting for the GIL while
    other calls run) is a 0.12 s pause, 1.4 s in all, past the request's 1.055 s, while the renders take
    ~1 ms each (content holding special-token text renders in full every time). Every conversation is
    answered (when the share ran on the wall clock from the first render, conversations 9 onwards were
    refused as out of template time)."""
    chat = service.models.load("templated").chat
    render_and_count = type(chat).count_chat

    def then_pause(self, *args, **kwargs):
        counted = render_and_count(self, *args, **kwargs)
        time.sleep(0.12)
        return counted

    monkeypatch.setattr(type(chat), "count_chat", then_pause)
    counted = service.count_chat("templated", _conversations(*["special_text_in_content"] * 12))
    assert [result.total for result in counted.results] == [counted.results[0].total] * 12


def test_a_model_without_a_chat_format_is_unsupported_naming_the_fix(service):
    failure = _failure(service.count_chat, "plain", _conversations("short"))
    assert failure.kind is ErrorKind.UNSUPPORTED and failure.reason is Reason.CHAT_FORMAT_NOT_SET_ERROR
    assert failure.metadata == {"ref": "plain@1"} and "publish a new version with one" in failure.message
    with pytest.raises(ChatFormatNotSetError):
        service.encode_chat("plain", _conversations("short"))


def test_limits_count_conversations_and_their_text(registry):
    conversations = _conversations("short", "system_and_turns", "tool_call")
    size = sum(map(conversation_bytes, conversations))
    tight = TokenizerService(ServedModels(registry), Limits(max_batch_items=2))
    with pytest.raises(RequestLimitExceeded, match="3 batch items"):
        tight.count_chat("chatml", conversations)
    small = TokenizerService(ServedModels(registry), Limits(max_request_bytes=size - 1))
    with pytest.raises(RequestLimitExceeded, match=f"{size} input bytes"):
        small.count_chat("chatml", conversations)
    TokenizerService(ServedModels(registry), Limits(max_request_bytes=size)).count_chat("chatml", conversations)


def test_the_answer_is_bounded_before_it_is_sent(registry):
    long_chat = [ChatConversation([{"role": "user", "content": "many words " * 2000}])]
    small = TokenizerService(ServedModels(registry), Limits(max_response_bytes=8000))
    failure = _failure(small.encode_chat, "chatml", long_chat)
    assert failure.kind is ErrorKind.LIMIT_EXCEEDED and failure.limit_name == "max_message_bytes"
    assert small.count_chat("chatml", long_chat).total > 4000  # counting sends no ids or text


def test_request_shapes_the_service_refuses(service):
    with pytest.raises(InvalidRequest, match="content_special_tokens: unknown value 'maybe'"):
        service.count_chat("chatml", _conversations("short"), content_special_tokens="maybe")
    deep: object = "x"
    for _ in range(MAX_CHAT_DEPTH + 5):
        deep = {"nested": deep}
    tools = [{"type": "function", "function": {"name": "f", "parameters": deep}}]
    with pytest.raises(InvalidRequest) as raised:
        service.count_chat("chatml", [ChatConversation([{"role": "user", "content": "x"}], tools)])
    assert raised.value.field == "conversations[0].tools" and f"deeper than {MAX_CHAT_DEPTH}" in str(raised.value)
    refused = _failure(service.count_chat, "chatml", _conversations("special_text_in_content"), content_special_tokens="refuse")
    assert refused.field == "conversations[0].messages[0].content" and "<|im_end|>" in refused.message


def test_chats_reserve_their_working_memory_like_every_operation(registry):
    # A large chat waits at the admission gate like a large Encode: held while the call record is open.
    admission = WorkAdmission(256 << 20, small_bytes=1 << 20)
    gated = TokenizerService(ServedModels(registry), Limits(), admission=admission)
    conversations = [ChatConversation([{"role": "user", "content": "many words " * 100_000}])]
    size = conversation_bytes(conversations[0])
    for operation in ("encode_chat", "count_chat"):
        with recording():
            getattr(gated, operation)("chatml", conversations)
            assert admission.held_bytes == chat_working_bytes(operation, [size]) > size
        assert admission.held_bytes == 0
    # a held budget makes a large chat wait, and past its deadline it gives up before any work
    holder = admission.reserve(256 << 20, call=None)
    try:
        with pytest.raises(DeadlineExpired, match="while waiting"):
            gated.count_chat("chatml", conversations, call=Call(0.2))
        assert gated.count_chat("chatml", _conversations("short")).total > 0  # small chats never wait
    finally:
        holder()
    assert admission.held_bytes == 0 and admission.running == 0


def test_per_conversation_bounds_name_the_conversation(service, monkeypatch):
    many = [{"role": "user", "content": ""}] * (MAX_CHAT_MESSAGES + 1)
    failure = _failure(service.count_chat, "chatml", _conversations("short") + [ChatConversation(many)])
    assert failure.kind is ErrorKind.INVALID_INPUT and failure.field == "conversations[1].messages"
    assert f"{MAX_CHAT_MESSAGES + 1:,} messages, over the limit of {MAX_CHAT_MESSAGES:,}" in failure.message
    schema = {"type": "object", "description": "d" * MAX_CHAT_TOOLS_BYTES}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    failure = _failure(service.encode_chat, "chatml", [ChatConversation([{"role": "user", "content": "x"}], tools)])
    assert failure.kind is ErrorKind.INVALID_INPUT and failure.field == "conversations[0].tools"
    assert f"over the limit of {MAX_CHAT_TOOLS_BYTES:,}" in failure.message
    # a schema of 100,000 empty properties: 1.2 MB of JSON whose keys are 0.6 MB (its structure counts too)
    empty = {"type": "object", "properties": {f"p{index}": {} for index in range(100_000)}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": empty}}]
    # refused while sizing, before any render: the model's chat format is never asked to count it
    chat = type(service.models.load("chatml").chat)
    monkeypatch.setattr(chat, "count_chat", lambda *args, **kwargs: pytest.fail("rendered an over-limit schema"))
    failure = _failure(service.count_chat, "chatml", [ChatConversation([{"role": "user", "content": "x"}], tools)])
    assert failure.field == "conversations[0].tools" and f"over the limit of {MAX_CHAT_TOOLS_BYTES:,}" in failure.message
    monkeypatch.undo()
    # at the bounds, both pass
    assert service.count_chat("chatml", [ChatConversation(many[:MAX_CHAT_MESSAGES])]).total > MAX_CHAT_MESSAGES


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=150, deadline=None)
@given(messages=st.lists(st.one_of(
    st.builds(lambda role, content: {"role": role, "content": content}, st.text(max_size=8), st.text(max_size=30)),
    st.builds(lambda content: {"content": content, "role": "user"}, st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3)),
    st.just({"role": "user", "content": None}),
    st.just({"role": "user", "name": "x"}),
    st.just({"role": "user", "content": "a", "name": "bob"}),
    st.just({"role": "user", "content": ["a", "b"]}),
), max_size=8))
def test_conversation_bytes_are_the_utf8_bytes_of_every_string(messages):
    """The plain-chat shortcut of conversation_bytes (every message {"role": str, "content": str}) and the
    general walk both count each key and string value in UTF-8 (lone surrogates 3 bytes), 8 per scalar, and
    ENTRY_BYTES per entry of an object or list plus 4 times that per object or list (the message's structure),
    MESSAGE_BYTES per message and PART_BYTES per item of a content list."""
    expected = 0
    for message in messages:
        expected += MESSAGE_BYTES + ENTRY_BYTES * (len(message) + 4)
        for key, value in message.items():
            expected += _utf8(key)
            if isinstance(value, str):
                expected += _utf8(value)
            elif isinstance(value, list):
                expected += sum(map(_utf8, value)) + ENTRY_BYTES * (len(value) + 4)
                expected += PART_BYTES * len(value) if key == "content" else 0
            else:
                expected += SCALAR_BYTES
    assert conversation_bytes(ChatConversation(messages)) == expected
