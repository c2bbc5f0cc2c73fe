"""A large chat request's conversations and messages are counted from its wire bytes before protobuf parses it
(tokend.server.chat_shape, native/chat_shape.c): the counts must be protobuf's for every message it reads,
and the service's refusal from the counts the same as from the parsed message. End to end (a real server,
5,000,000 empty messages refused without the parse): tests/server/test_hostile_requests.py."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from tokend.server._chat_shape import chat_shape
from tokend.server.chat_shape import CHAT_METHODS, chat_prechecks
from tokend.service import InvalidRequest, Limits, RequestLimitExceeded, TokenizerService
from tokend.service.chat import MAX_CHAT_MESSAGES
from tokend_api.v1 import tokenizer_pb2 as pb

from .test_decode_request import INT64, ODD, _field

UNKNOWN = st.one_of(  # field numbers neither message nor a conversation has
    st.builds(lambda n, v: _field(n, 0, v), st.integers(5, 1000), INT64),
    st.builds(lambda n, b: _field(n, 1, b), st.integers(5, 1000), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 2, b), st.integers(5, 1000), st.binary(max_size=6)),
    st.builds(lambda n, b: _field(n, 5, b), st.integers(5, 1000), st.binary(min_size=4, max_size=4)),
)
MESSAGE = st.builds(
    lambda role, text: pb.ChatMessage(role=role, text=text).SerializeToString(), st.text(max_size=4), st.text(max_size=6)
)
CONVERSATION_RECORD = st.one_of(
    st.builds(lambda message: _field(1, 2, message), MESSAGE),
    st.builds(lambda tools: _field(2, 2, tools.encode()), st.text(max_size=6)),
    st.builds(lambda flag: _field(3, 0, flag), st.integers(0, 1)),
    UNKNOWN,
)
CONVERSATION = st.lists(CONVERSATION_RECORD, max_size=6).map(b"".join)
RECORD = st.one_of(
    st.builds(lambda model: _field(1, 2, model.encode()), st.text(max_size=6)),
    st.builds(lambda conversation: _field(2, 2, conversation), CONVERSATION),
    st.builds(lambda number, value: _field(number, 0, value), st.integers(3, 4), st.integers(0, 2)),
    UNKNOWN,
)
REQUEST_TYPES = [pb.EncodeChatRequest, pb.CountChatTokensRequest]


def _parsed_shape(message_type, data: bytes, over: int):
    counts = [len(conversation.messages) for conversation in message_type.FromString(data).conversations]
    first_over = next((index for index, count in enumerate(counts) if count > over), -1)
    return len(counts), sum(counts), first_over, counts[first_over] if first_over >= 0 else 0


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), st.lists(RECORD, max_size=8).map(b"".join), st.integers(0, 3))
def test_the_counts_are_protobufs(message_type, data, over):
    assert chat_shape(data, over) == _parsed_shape(message_type, data, over)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(REQUEST_TYPES), st.lists(st.one_of(RECORD, ODD), max_size=8).map(b"".join))
def test_what_it_reads_of_odd_bytes_is_protobufs_and_the_rest_is_left_to_protobuf(message_type, data):
    shape = chat_shape(data, 2)
    try:
        expected = _parsed_shape(message_type, data, 2)
    except DecodeError:
        return  # refused by protobuf whatever the counter said (it may refuse first, from counts it read)
    assert shape is None or shape == expected


@pytest.mark.parametrize("method", CHAT_METHODS)
def test_a_precheck_refuses_what_the_service_refuses_from_the_parsed_message(method):
    service = TokenizerService(models=None, limits=Limits(max_request_bytes=200_000, max_batch_items=8))
    check = chat_prechecks(service)[method]
    message_type = getattr(pb, f"{method}Request")
    empty = pb.ChatMessage()
    cases = {
        "fits": [[empty] * 3] * 2,
        "max_request_bytes": [[empty] * 4000] * 2,
        "max_batch_items": [[empty]] * 9,
        "messages": [[empty], [empty] * (MAX_CHAT_MESSAGES + 1)],
    }
    for case, conversations in cases.items():
        request = message_type(model="m", conversations=[pb.ChatConversation(messages=messages) for messages in conversations])
        counts = [len(messages) for messages in conversations]
        errors = []
        for run in (lambda: check(request.SerializeToString()), lambda: service.check_chat_shape(counts)):
            try:
                run()
                errors.append(None)
            except (RequestLimitExceeded, InvalidRequest) as error:
                errors.append((type(error), str(error)))
        assert errors[0] == errors[1], case
        assert (errors[0] is None) == (case == "fits"), (case, errors[0])
