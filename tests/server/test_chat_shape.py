"""A large chat request's conversations, messages, content parts, tool calls and JSON containers are counted
from its wire bytes before protobuf parses it (tokend.server.chat_shape, native/chat_shape.c): the counts
must be protobuf's for every message it parses, bytes the counter refuses must be bytes protobuf refuses, the
least bytes it derives must never exceed what the service counts for the parsed request, and the service's
refusal from the counts must be the one it gives the parsed message. End to end (a real server refusing
5,000,000 empty messages, parts or tool calls without the parse): tests/server/test_hostile_requests.py."""

from __future__ import annotations

import json

import pytest
from google.protobuf.message import DecodeError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tokend.server._chat_shape import chat_shape
from tokend.server.chat_messages import conversations_from
from tokend.server.chat_shape import CHAT_METHODS, chat_prechecks, least_bytes
from tokend.errors import ChatRequestError
from tokend.registry.chat.messages import parse_messages
from tokend.service import BatchItemError, InvalidRequest, Limits, RequestLimitExceeded, TokenizerService
from tokend.service.errors import describe
from tokend.service import ChatConversation
from tokend.service.chat import (
    JSON_COMMA_BYTES,
    JSON_CONTAINER_BYTES,
    MAX_CHAT_MESSAGES,
    MAX_CHAT_TOOLS_BYTES,
    conversation_bytes,
)
from tokend_api.v1 import tokenizer_pb2 as pb

from .test_batch_items import GROUP
from .test_decode_request import INT64, _field, _varint

REQUEST_TYPES = [pb.EncodeChatRequest, pb.CountChatTokensRequest]
# Records protobuf reads as unknown fields, at any level: field numbers no message here has, a known number
# with another wire type, groups (nested, empty) — and bytes protobuf refuses.
UNKNOWN = st.one_of(
    st.builds(lambda n, v: _field(n, 0, v), st.integers(1, 12), INT64),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(1, 12), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 2, b), st.integers(9, 40), st.binary(max_size=6)),
    st.builds(lambda n, b: _field(n, 5, b), st.integers(1, 12), st.binary(min_size=4, max_size=4)),
    st.builds(lambda n, inner: _varint(n << 3 | 3) + inner + _varint(n << 3 | 4), st.integers(1, 12),
              st.sampled_from([b"", b"\x08\x01", _varint(7 << 3 | 3) + _varint(7 << 3 | 4)])),  # fmt: skip
)
ODD_BUT_PARSED = st.one_of(  # records protobuf parses that no client sends (test_batch_items.py)
    GROUP,
    st.builds(lambda n, v: _field(n, 0, v), st.integers(1, 8), INT64),  # a known field as a varint
    st.builds(lambda n: _varint(n << 3 | 0) + b"\xff" * 9 + b"\x7f", st.integers(1, 1000)),  # bits past the 64th
)
BROKEN = st.sampled_from([
    b"\x07", b"\x0e", b"\x0c", b"\x0a\x05ab", b"\xff" * 11, b"\x00", b"\x1b", b"\x1b\x24", b"\x0a",
])  # fmt: skip
JSON = st.one_of(
    st.recursive(st.one_of(st.none(), st.integers(), st.text(alphabet='a",{}[]\\', max_size=4)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(alphabet='a"{,', max_size=3), inner, max_size=3)),
                 max_leaves=6).map(lambda value: json.dumps(value)),
    st.text(alphabet='[]{},"\\a', max_size=8),  # not JSON: refused after the parse
)  # fmt: skip
JSON_OBJECT = st.dictionaries(  # extra_json: an object of the message's other keys ("content" replaces the typed one's)
    st.sampled_from(["k", "weight", "x,y", "content"]), st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.just({})), max_size=3
).map(json.dumps)


def _records(*options):
    return st.lists(st.one_of(*options, ODD_BUT_PARSED), max_size=4).map(b"".join)


PART = st.one_of(
    st.builds(lambda text: pb.ChatContentPart(text=text).SerializeToString(), st.text(max_size=3)),
    _records(  # typed, untyped, a type sent twice (the last counts), types the formats refuse, not UTF-8
        st.builds(lambda kind: _field(1, 2, kind), st.sampled_from([b"text", b"", b"image_url", b"t\xc3\xa9xt", b"\xff"])),
        st.builds(lambda text: _field(2, 2, text.encode()), st.text(max_size=3)),
        UNKNOWN,
    ),
)
PARTS = _records(st.builds(lambda part: _field(1, 2, part), PART), UNKNOWN)
FUNCTION = _records(
    st.builds(lambda name: _field(1, 2, name.encode()), st.text(max_size=3)),
    st.builds(lambda text: _field(2, 2, text.encode()), st.text(max_size=3)),  # arguments: the oneof's other member
    st.builds(lambda text: _field(3, 2, text.encode()), JSON),
    UNKNOWN,
)
TOOL_CALL = _records(
    st.builds(lambda number, text: _field(number, 2, text.encode()), st.sampled_from([1, 2]), st.text(max_size=3)),  # id, type
    st.builds(lambda function: _field(3, 2, function), FUNCTION),
    UNKNOWN,
)
MESSAGE = _records(
    st.builds(lambda role: _field(1, 2, role.encode()), st.sampled_from(["user", "assistant", ""])),
    st.builds(lambda text: _field(2, 2, text.encode()), st.text(max_size=4)),
    st.builds(lambda parts: _field(3, 2, parts), PARTS),
    st.builds(lambda value: _field(4, 0, value), st.integers(0, 1)),  # null_content
    st.builds(lambda number, text: _field(number, 2, text.encode()), st.sampled_from([5, 7]), st.text(max_size=3)),
    st.builds(lambda call: _field(6, 2, call), TOOL_CALL),
    st.builds(lambda extra: _field(8, 2, extra.encode()), st.one_of(JSON_OBJECT, JSON)),
    UNKNOWN,
)
CONVERSATION = _records(
    st.builds(lambda message: _field(1, 2, message), MESSAGE),
    st.builds(lambda tools: _field(2, 2, tools.encode()), JSON),
    st.builds(lambda flag: _field(3, 0, flag), st.integers(0, 1)),
    UNKNOWN,
)
RECORDS = [
    st.builds(lambda model: _field(1, 2, model.encode()), st.text(max_size=6)),
    st.builds(lambda conversation: _field(2, 2, conversation), CONVERSATION),
    st.builds(lambda number, value: _field(number, 0, value), st.integers(3, 4), st.integers(0, 2)),
    UNKNOWN,
    ODD_BUT_PARSED,
]
REQUEST = st.lists(st.one_of(*RECORDS), max_size=6).map(b"".join)
ODD_REQUEST = st.lists(st.one_of(*RECORDS, BROKEN), max_size=6).map(b"".join)


def _json_least(text: str) -> int:
    """8 per [ or {, 2 per comma and 8 per scalar (a value that is no string or container; not the whole
    field) outside strings: chat_shape.c's count of a tools_json field, written plainly."""
    least, in_string, escaped, value_may_start = 0, False, False, False
    for char in text.encode():
        char = chr(char)
        if in_string:
            in_string = escaped or char != '"'
            escaped = not escaped and char == "\\"
        elif char == '"':
            in_string, value_may_start = True, False
        elif char in "[{":
            least += 8
            value_may_start = char == "["
        elif char in ",:":
            least += 2 if char == "," else 0
            value_may_start = True
        elif char in "]}":
            value_may_start = False
        elif char not in " \t\n\r":
            least += 8 if value_may_start else 0
            value_may_start = False
    return least


def _protobuf_counts(message, over: int) -> tuple[int, ...]:
    counts = [len(conversation.messages) for conversation in message.conversations]
    first_over = next((index for index, count in enumerate(counts) if count > over), -1)
    messages = [m for conversation in message.conversations for m in conversation.messages]
    parts = sum(len(m.parts.parts) for m in messages if m.WhichOneof("content") == "parts")
    return len(counts), sum(counts), first_over, counts[first_over] if first_over >= 0 else 0, parts, sum(len(m.tool_calls) for m in messages)


def _first_refused_part(message) -> tuple[int, int, int, str | None] | None:
    """(conversation, message, part, type) of the first content part a chat format refuses, among the messages
    whose parsed content is their parts and that have no extra_json: what chat_shape.c must find."""
    for c, conversation in enumerate(message.conversations):
        for m, chat_message in enumerate(conversation.messages):
            if chat_message.WhichOneof("content") != "parts" or chat_message.extra_json:
                continue
            for number, part in enumerate(chat_message.parts.parts):
                if part.type != "text" or not part.HasField("type"):
                    return c, m, number, part.type if part.HasField("type") else None
    return None


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), st.one_of(REQUEST, ODD_REQUEST), st.integers(0, 3))
def test_what_protobuf_parses_is_counted_as_protobuf_counts_it(message_type, data, over):
    shape = chat_shape(data, over, 20)
    try:
        message = message_type.FromString(data)
    except DecodeError:
        return  # refused by protobuf: the counter may refuse it too, or count what it read
    assert shape is not None, "bytes protobuf parses were refused"
    expected = _protobuf_counts(message, over)
    assert shape[:4] == expected[:4]
    assert shape[4] >= expected[4]  # parts a later `text` replaced count too: protobuf built them
    assert shape[5] == expected[5]
    tools = [_json_least(conversation.tools_json) for conversation in message.conversations]
    first_tools = next((index for index, least in enumerate(tools) if least > 20), -1)
    assert shape[9:11] == (first_tools, tools[first_tools] if first_tools >= 0 else 0)
    kept = [p for c in message.conversations for m in c.messages if m.WhichOneof("content") == "parts" for p in m.parts.parts]
    typed = [part.type.encode() for part in kept if part.HasField("type")]
    assert shape[11] >= len(typed) and shape[12] >= sum(map(len, typed))  # replaced parts count too, as above
    conversation, message_index, part, type_start, type_length = shape[13:18]
    refused = None if conversation < 0 else (
        conversation, message_index, part, None if type_start < 0 else data[type_start : type_start + type_length].decode()
    )  # fmt: skip
    assert refused == _first_refused_part(message)


# Unknown groups holding field number 0, which protobuf (upb) skips inside a group (and refuses outside one):
# a varint, a group of its own, a string.
_FIELD_ZERO_GROUPS = [
    _varint(9 << 3 | 3) + b"\x00\x01" + _varint(9 << 3 | 4),
    _varint(9 << 3 | 3) + b"\x03\x04" + _varint(9 << 3 | 4),
    _varint(9 << 3 | 3) + b"\x08\x01\x02\x01x" + _varint(9 << 3 | 4),
]


@pytest.mark.parametrize("group", _FIELD_ZERO_GROUPS)
@pytest.mark.parametrize("level", ["request", "conversation", "message", "parts", "part", "tool call", "function"])
def test_field_number_zero_inside_a_group_is_skipped_as_protobuf_skips_it(group, level):
    """Found by differential fuzzing (fuzz07): b";\x00\x01<" (field 7's group holding field 0's varint 1) parses,
    but the counter refused every tag of field number 0, so the precheck refused as malformed a request
    protobuf reads."""
    part = _field(1, 2, b"text") + (group if level == "part" else b"")
    parts = _field(1, 2, part) + (group if level == "parts" else b"")
    function = _field(1, 2, b"f") + (group if level == "function" else b"")
    call = _field(3, 2, function) + (group if level == "tool call" else b"")
    message = _field(1, 2, b"user") + _field(3, 2, parts) + _field(6, 2, call) + (group if level == "message" else b"")
    conversation = _field(1, 2, message) + _field(1, 2, b"") + (group if level == "conversation" else b"")
    data = (group if level == "request" else b"") + _field(1, 2, b"m") + _field(2, 2, conversation)
    for message_type in REQUEST_TYPES:
        parsed = message_type.FromString(data)  # what this test rests on
        shape = chat_shape(data, 1, 20)
        assert shape is not None, "bytes protobuf parses were refused"
        assert shape[:6] == _protobuf_counts(parsed, 1)
    assert chat_shape(b"\x00\x01", 1, 20) is None and chat_shape(_field(1, 2, b"m") + b"\x02\x00", 1, 20) is None  # outside a group


def _message_records(*records: bytes) -> bytes:
    """A CountChatTokensRequest of one conversation: a plain message, then one of these records (role first)."""
    plain = _field(1, 2, b"user") + _field(2, 2, b"hi")
    message = _field(1, 2, b"user") + b"".join(records)
    return _field(2, 2, _field(1, 2, plain) + _field(1, 2, message))


def _parts(*types: bytes | None) -> bytes:
    return _field(3, 2, b"".join(_field(1, 2, b"" if kind is None else _field(1, 2, kind)) for kind in types))


@pytest.mark.parametrize(
    ("records", "refused"),
    [
        ((_parts(b"text", b"image_url"),), (0, 1, 1, "image_url")),
        ((_parts(b"text"), _parts(None)), (0, 1, 1, None)),  # parts records merge: the second's part is part 1
        ((_parts(b"image_url"), _field(4, 0, 0)), None),  # null_content replaces the parts
        ((_parts(b"image_url"), _field(2, 2, b"x")), None),  # so does text
        ((_field(2, 2, b"x"), _parts(b"text", b"")), (0, 1, 1, "")),  # parts after text: counted afresh
        ((_parts(b"image_url"), _field(2, 2, b"x"), _parts(b"text", b"video")), (0, 1, 1, "video")),
        ((_parts(b"image_url"), _field(8, 2, b'{"content": "x"}')), None),  # extra_json may replace the content
        ((_parts(b"image_url"), _field(8, 2, b"{}")), None),  # ... and is not read for it
        ((_parts(b"image_url"), _field(8, 2, b"{}"), _field(8, 2, b"")), (0, 1, 0, "image_url")),  # the last is empty
        ((_parts(b"text", b"text"),), None),
    ],
)
def test_the_first_part_a_format_refuses_is_found_where_protobuf_leaves_it(records, refused):
    data = _message_records(*records)
    shape = chat_shape(data, MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)
    conversation, message, part, type_start, type_length = shape[13:18]
    found = None if conversation < 0 else (
        conversation, message, part, None if type_start < 0 else data[type_start : type_start + type_length].decode()
    )  # fmt: skip
    assert found == refused == _first_refused_part(pb.CountChatTokensRequest.FromString(data))


# Parts an extra_json "content" replaces (rare among the drawn requests).
_REPLACED_PARTS = pb.CountChatTokensRequest(conversations=[pb.ChatConversation(messages=[pb.ChatMessage(
    parts=pb.ChatContentParts(parts=[pb.ChatContentPart()] * 3), extra_json='{"content": "hi"}')])]).SerializeToString()  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), REQUEST)
@example(pb.CountChatTokensRequest, _REPLACED_PARTS)
def test_the_least_bytes_never_exceed_what_the_service_counts(message_type, data):
    shape = chat_shape(data, MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)
    try:
        conversations = conversations_from(message_type.FromString(data).conversations)
        counted = sum(conversation_bytes(conversation) for conversation in conversations)
    except (DecodeError, InvalidRequest):
        return  # refused anyway
    kept = [p for c in message_type.FromString(data).conversations for m in c.messages for p in _parts_kept(m)]
    typed = [part.type.encode() for part in kept if part.HasField("type")]
    least = least_bytes((*shape[:4], len(kept), *shape[5:11], len(typed), sum(map(len, typed)), *shape[13:]))
    assert shape is not None and least <= counted  # the parts that stayed
    over = chat_shape(data, MAX_CHAT_MESSAGES, 20)[9:]
    if over[0] >= 0:  # the least of its tools the counter found: no more than the service counts of them
        assert conversation_bytes(ChatConversation([], conversations[over[0]].tools)) >= over[1] > 20


def _parts_kept(message: pb.ChatMessage) -> list[pb.ChatContentPart]:
    """The content parts of a parsed message that its dict keeps: none when a later `text` replaced them, or an
    `extra_json` "content" (the dict's update) did. The wire count counts them all: protobuf and the servicer
    built them before they were dropped (a message of 220,000 parts and extra_json {"content": "hi"}, 440 KB,
    is refused from its wire bytes though its dict counts 53 bytes)."""
    if message.WhichOneof("content") != "parts":
        return []
    if message.extra_json and "content" in json.loads(message.extra_json):
        return []
    return list(message.parts.parts)


def test_the_counters_prices_are_the_services():
    assert (JSON_CONTAINER_BYTES, JSON_COMMA_BYTES) == (8, 2)  # written in native/chat_shape.c (tools_json)


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_a_precheck_refuses_what_the_service_refuses_from_the_parsed_message(method):
    limits = Limits(max_request_bytes=200_000, max_batch_items=8)
    service = TokenizerService(models=None, limits=limits)
    check = chat_prechecks(service)[method]
    message_type = getattr(pb, f"{method}Request")
    empty = pb.ChatMessage()
    parts = pb.ChatMessage(parts=pb.ChatContentParts(parts=[pb.ChatContentPart()] * 20_000))
    calls = pb.ChatMessage(tool_calls=[pb.ChatToolCall()] * 10_000)
    cases = {
        "fits": [[empty] * 3] * 2,
        "max_request_bytes": [[empty] * 4000] * 2,
        "max_batch_items": [[empty]] * 9,
        "messages": [[empty], [empty] * (MAX_CHAT_MESSAGES + 1)],
        "parts": [[parts]],
        "tool calls": [[calls]],
        "tools": [[empty], [empty]],
    }
    tools = "[" + "{}," * 140_000 + "{}]"  # 420 KB, counts 1.1 MB: over the 1 MiB of tools a conversation may have
    for case, conversations in cases.items():
        request = message_type(model="m", conversations=[
            pb.ChatConversation(messages=messages, tools_json=tools if case == "tools" and index else "")
            for index, messages in enumerate(conversations)])  # fmt: skip
        errors = []
        for run in (lambda: check(request.SerializeToString()), lambda: _parsed_refusal(service, request)):
            try:
                run()
                errors.append(None)
            except (RequestLimitExceeded, InvalidRequest) as error:
                errors.append((type(error), getattr(error, "limit_name", None), getattr(error, "field", None)))
        assert (errors[0] is None) == (case == "fits"), (case, errors)
        assert errors[0] == errors[1], (case, errors)
    with pytest.raises(InvalidRequest, match=f"do not parse as the {method} request message"):
        check(b"\x12\x05ab")  # a conversation record past the end


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_half_a_million_untyped_parts_are_refused_as_the_parsed_request_is(method):
    """500,000 content parts without a "type" (2 bytes each: 1 MB) counted 16 bytes each, under the default
    max_request_bytes: the request was parsed, every part made a dict (0.8 s of worker CPU, +150 MiB), and
    then refused for its first part's missing type. A part now counts PART_BYTES more, as a message does."""
    service = TokenizerService(models=None, limits=Limits())
    request = getattr(pb, f"{method}Request")(model="m", conversations=[pb.ChatConversation(messages=[
        pb.ChatMessage(role="user", parts=pb.ChatContentParts(parts=[pb.ChatContentPart()] * 500_000))])])  # fmt: skip
    data = request.SerializeToString()
    assert len(data) < 1_100_000
    errors = []
    for run in (lambda: chat_prechecks(service)[method](data), lambda: _parsed_refusal(service, request)):
        with pytest.raises(RequestLimitExceeded) as refused:
            run()
        errors.append((refused.value.limit_name, refused.value.actual))
    assert errors[0][0] == errors[1][0] == "max_request_bytes"
    assert errors[0][1] <= errors[1][1]  # the least the wire bytes count, at most what the parsed request counts


def _parsed_refusal(service, request) -> None:
    """What the servicer does with the parsed request before any model: the shape, then the counted bytes."""
    service.check_chat_shape([len(conversation.messages) for conversation in request.conversations])
    conversations = conversations_from(request.conversations)
    sizes = [conversation_bytes(c, f"conversations[{i}]") for i, c in enumerate(conversations)]
    service.limits.check_request(items=len(conversations), input_bytes=sum(sizes))


def _one_message_of_parts(method: str, part: pb.ChatContentPart, count: int):
    return getattr(pb, f"{method}Request")(model="m", conversations=[pb.ChatConversation(messages=[
        pb.ChatMessage(role="user", text="hello"),
        pb.ChatMessage(role="user", parts=pb.ChatContentParts(parts=[part] * count))])])  # fmt: skip


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_typed_empty_parts_are_refused_unparsed_as_the_parsed_request_is(method):
    """190,000 parts {"type": "text", "text": ""} (1.5 MB) count 50 bytes each parsed (9.5 MB), but the wire
    count did not read a part's type: 40 each (7.6 MB, under max_request_bytes). So the worker parsed them
    and made a dict of each before the refusal: 0.33-0.39 s of CPU and +45-79 MiB. A typed part now counts its
    type on the wire too (TYPED_PART_BYTES and the type's bytes)."""
    service = TokenizerService(models=None, limits=Limits())
    request = _one_message_of_parts(method, pb.ChatContentPart(type="text", text=""), 190_000)
    data = request.SerializeToString()
    errors = []
    for run in (lambda: chat_prechecks(service)[method](data), lambda: _parsed_refusal(service, request)):
        with pytest.raises(RequestLimitExceeded) as refused:
            run()
        errors.append((refused.value.limit_name, refused.value.actual))
    assert errors[0][0] == errors[1][0] == "max_request_bytes"
    assert errors[0][1] <= errors[1][1]


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("kind", ["image_url", None, "Text"])
def test_a_part_the_formats_refuse_is_refused_unparsed_with_their_error(method, kind):
    """150,000 parts of a type no chat format tokenizes (1.9 MB; within max_request_bytes, counted) were parsed
    and made dicts (0.28-0.29 s of CPU, +39-66 MiB) before the format refused the first: the wire count finds it, and
    the precheck raises the very error the service gives the parsed request (field, message, metadata)."""
    service = TokenizerService(models=None, limits=Limits())
    part = pb.ChatContentPart(text="") if kind is None else pb.ChatContentPart(type=kind, text="")
    request = _one_message_of_parts(method, part, 150_000)
    with pytest.raises(BatchItemError) as refused:
        chat_prechecks(service)[method](request.SerializeToString())
    _parsed_refusal(service, request)  # within the limits
    conversation = conversations_from(request.conversations)[0]
    with pytest.raises(ChatRequestError) as parsed:
        parse_messages(conversation.messages)
    expected = describe(BatchItemError("conversations[0]", 0, parsed.value))
    assert describe(refused.value) == expected
    assert expected.field == "conversations[0].messages[1].content[0]"


PLAIN_MESSAGE = _records(  # what a message's typed keys hold, without parts, tool calls or JSON fields
    st.builds(lambda role: _field(1, 2, role.encode()), st.sampled_from(["user", "assistant", "", "ü"])),
    st.builds(lambda text: _field(2, 2, text.encode()), st.text(max_size=4)),
    st.builds(lambda value: _field(4, 0, value), st.integers(0, 1)),
    st.builds(lambda number, text: _field(number, 2, text.encode()), st.sampled_from([5, 7]), st.text(max_size=3)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(PLAIN_MESSAGE, max_size=4), max_size=3))
def test_a_messages_typed_keys_count_on_the_wire_as_parsed(conversations):
    """Role, content, name and tool_call_id: the least the wire bytes make of such messages is what the service
    counts of the parsed request, to the byte."""
    data = b"".join(_field(2, 2, b"".join(_field(1, 2, message) for message in messages)) for messages in conversations)
    parsed = conversations_from(pb.CountChatTokensRequest.FromString(data).conversations)
    assert least_bytes(chat_shape(data, MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)) == sum(map(conversation_bytes, parsed))


_TYPED = {"role": _field(1, 2, b"assistant"), "content": _field(2, 2, b""), "name": _field(5, 2, b"n"),
          "tool_call_id": _field(7, 2, b""), "tool_calls": _field(6, 2, _field(3, 2, _field(1, 2, b"f")))}


@pytest.mark.parametrize("typed", [("role", "content"), ("role", "content", "name"), tuple(_TYPED)])
@pytest.mark.parametrize("extra", [
    '{"role": "u", "content": []}', '{"content": "", "role": 1.5}', '{"role": "", "name": "", "content": "", "k": 0}',
    '{"tool_call_id": "", "name": "", "role": "", "content": ""}', '{"role": "", "k": [1, 2]}',
])  # fmt: skip
def test_an_extra_json_sharing_keys_with_the_typed_ones_counts_no_more_than_parsed(typed, extra):
    """Found by differential fuzzing (fuzz07): a message with role and text and extra_json
    {"role": "\\"", "content": []} counted 57 bytes on the wire, 56 parsed. Each comma between the extra object's
    keys counted an entry, but its keys may be typed ones (the dict then holds one entry for both): a request of
    many such messages just within max_request_bytes was refused unparsed. ("tool_calls" in extra_json replaces
    tool calls protobuf built: counted, as replaced content parts are; server/chat_shape.py.)"""
    message = b"".join(_TYPED[key] for key in typed) + _field(8, 2, extra.encode())
    data = _field(2, 2, _field(1, 2, message) * 3)
    parsed = conversations_from(pb.CountChatTokensRequest.FromString(data).conversations)
    counted = sum(map(conversation_bytes, parsed))
    assert least_bytes(chat_shape(data, MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)) <= counted


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("extra_json", ["", "{}"])
def test_role_only_messages_are_refused_unparsed_as_the_parsed_request_is(method, extra_json):
    """249,600 messages {"role": "user"} (2 MB) count 42 bytes each parsed (10.5 MB), 32 on the wire (under
    max_request_bytes) when the wire count read no key of a message: the worker parsed them and made their dicts
    before the refusal, 0.66-0.70 s of CPU and +58-89 MiB (with an extra_json "{}" each, 1.06-1.10 s). A
    message's typed keys now count on the wire too (with extra_json, which may replace their values, the keys
    alone: 38 bytes)."""
    service = TokenizerService(models=None, limits=Limits())
    request = getattr(pb, f"{method}Request")(model="m", conversations=[
        pb.ChatConversation(messages=[pb.ChatMessage(role="user", extra_json=extra_json)] * 3900)] * 64)  # fmt: skip
    data = request.SerializeToString()
    errors = []
    for run in (lambda: chat_prechecks(service)[method](data), lambda: _parsed_refusal(service, request)):
        with pytest.raises(RequestLimitExceeded) as refused:
            run()
        errors.append((refused.value.limit_name, refused.value.actual))
    assert errors[1] == ("max_request_bytes", 42 * 249_600)
    assert errors[0] == ("max_request_bytes", (38 if extra_json else 42) * 249_600)


def _one_message_of_tool_calls(method: str, call: pb.ChatToolCall, count: int):
    return getattr(pb, f"{method}Request")(model="m", conversations=[pb.ChatConversation(messages=[
        pb.ChatMessage(role="user", text="hello"), pb.ChatMessage(role="assistant", tool_calls=[call] * count)])])  # fmt: skip


def _refusals(service, method: str, request) -> list[tuple[type, str | None, str | None]]:
    """How the precheck of the wire bytes and the parsed path refuse ``request`` (None: not refused)."""
    refusals = []
    for run in (lambda: chat_prechecks(service)[method](request.SerializeToString()), lambda: _parsed_refusal(service, request)):
        try:
            run()
            refusals.append(None)
        except (RequestLimitExceeded, InvalidRequest) as error:
            refusals.append((type(error), getattr(error, "limit_name", None), getattr(error, "field", None)))
    return refusals


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_tool_calls_with_id_type_and_arguments_are_refused_unparsed_as_the_parsed_request_is(method):
    """240,000 tool calls {"id": "", "type": "", "function": {"name": "", "arguments": ""}} (10 bytes each on the
    wire, 2.4 MB) count 55 bytes each parsed (13.2 MB), but the wire count priced a tool call as
    {"function": {"name": ""}}: 34 each (8.2 MB, under max_request_bytes). So the worker parsed them and made two
    dicts of each before the refusal. A tool call's "id", "type" and "arguments" and its strings now count on
    the wire too."""
    service = TokenizerService(models=None, limits=Limits())
    call = pb.ChatToolCall(id="", type="", function=pb.ChatFunctionCall(name="", arguments=""))
    request = _one_message_of_tool_calls(method, call, 240_000)
    refusals = _refusals(service, method, request)
    assert refusals[0] == refusals[1] == (RequestLimitExceeded, "max_request_bytes", None)
    shape = chat_shape(request.SerializeToString(), MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)
    assert least_bytes(shape) == sum(map(conversation_bytes, conversations_from(request.conversations)))  # to the byte


@pytest.mark.parametrize("method", CHAT_METHODS)
@pytest.mark.parametrize("where", ["arguments_json", "extra_json", "tools_json"])
def test_numbers_in_json_fields_are_refused_unparsed_as_the_parsed_request_is(method, where):
    """A number (or true, false, null) in a JSON field counts SCALAR_BYTES (8) parsed and its comma, 2 bytes on
    the wire ("0,"); the wire count priced the comma alone: 4,000,000 of them in an arguments_json or extra_json
    (8 MB) were within the least of max_request_bytes, and 500,000 in a tools_json within the least of the
    1 MiB of tools a conversation may have, and were parsed (json.loads, then the walk that counts them) before
    the refusal. A scalar now counts on the wire."""
    service = TokenizerService(models=None, limits=Limits())
    count = 500_000 if where == "tools_json" else 4_000_000
    numbers = "[" + ",".join(["0"] * count) + "]"
    message = pb.ChatMessage(role="user", text="hi")
    conversation = pb.ChatConversation(messages=[message])
    if where == "arguments_json":
        call = pb.ChatToolCall(function=pb.ChatFunctionCall(name="f", arguments_json=numbers))
        conversation = pb.ChatConversation(messages=[message, pb.ChatMessage(role="assistant", tool_calls=[call])])
    elif where == "extra_json":
        conversation = pb.ChatConversation(messages=[pb.ChatMessage(role="user", text="hi", extra_json='{"x": ' + numbers + "}")])
    else:
        conversation = pb.ChatConversation(messages=[message], tools_json=numbers)
    request = getattr(pb, f"{method}Request")(model="m", conversations=[conversation])
    refusals = _refusals(service, method, request)
    expected = (InvalidRequest, None, "conversations[0].tools") if where == "tools_json" else (RequestLimitExceeded, "max_request_bytes", None)
    assert refusals[0] == refusals[1] == expected


@pytest.mark.parametrize(
    "text", ["0", "[]", "{}", "[0, -1.5e3, true, false, null]", '{"a": 1, "b": [null, {"c": "d,e"}], "f": "1"}',
             " [ 1 , [ 2 ] , { } , NaN , -Infinity ] ", '["a", 1, "b\\"", 2]'],
)
def test_a_json_fields_containers_commas_and_scalars_are_counted_as_json_loads_makes_them(text):
    """The wire count of a JSON field (a tool call's arguments) against the value json.loads makes of it: one
    container per list or object, a comma between entries, one scalar per number, true, false, null."""
    value = json.loads(text)
    shape = chat_shape(_message_records(_field(6, 2, _field(3, 2, _field(3, 2, text.encode())))), MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)
    containers, commas, scalars = shape[6], shape[7], shape[22]

    def walk(item):
        if isinstance(item, list):
            return [1, 0, 0, 0] if not item else [a + b for a, b in zip([1, len(item) - 1, 0, 0], map(sum, zip(*map(walk, item))))]
        if isinstance(item, dict):
            inner = [walk(key) for key in item] + [walk(item[key]) for key in item]
            return [a + b for a, b in zip([1, max(0, len(item) - 1), 0, 0], map(sum, zip(*inner)) if inner else [0] * 4)]
        return [0, 0, 0, 1] if not isinstance(item, str) else [0, 0, 1, 0]

    expected_containers, expected_commas, _, expected_scalars = walk(value)
    assert (containers, commas, scalars) == (expected_containers, expected_commas, expected_scalars)
