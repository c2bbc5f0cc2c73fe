"""Large Tokenizer requests are parsed on the call's handler thread, after the availability gate, not on
grpcio's polling thread.

grpcio runs a method's request deserializer on the worker's one polling thread, which every other call of
the worker needs to start and end; parsing an 8 MiB request there held up the small calls arriving
meanwhile (docs/decisions.md). A message of ``DEFERRED_PARSE_BYTES`` or more is handed on unparsed and the
innermost interceptor, DeferredParse, parses it. Checked on a real grpc server on loopback with the worker's
ErrorInterceptor and DeferredParse: the deserializer records the thread it runs on, the handler its own.
"""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
import pytest
from tokend_api import SERVICE_NAME
from tokend_api.v1 import tokenizer_pb2 as pb

from support.server import free_port
from tokend.server.deferred_parse import DEFERRED_PARSE_BYTES, DeferredParse, DeferredRequest
from tokend.server.error_interceptor import ErrorInterceptor
from tokend.server.unary_interceptor import UnaryInterceptor


class _Threads:
    """A deserializer and a handler that record where they ran."""

    def __init__(self) -> None:
        self.parsed_on: list[str] = []
        self.handled_on: list[str] = []

    def deserialize(self, data: bytes) -> bytes:
        self.parsed_on.append(threading.current_thread().name)
        if data.startswith(b"bad"):
            raise ValueError("not a message")  # as protobuf's DecodeError would
        return data

    def handle(self, request: bytes, context) -> bytes:
        self.handled_on.append(threading.current_thread().name)
        return b"%d" % len(request)

    def handle_stream(self, requests, context):
        for request in requests:
            yield self.handle(request, context)


class _Gate(UnaryInterceptor):
    """Where the availability gate sits (between the error interceptor and DeferredParse): records whether
    the request it sees is still unparsed."""

    def __init__(self) -> None:
        self.saw_unparsed: list[bool] = []

    def handle(self, method, behaviour, request, context):
        self.saw_unparsed.append(isinstance(request, DeferredRequest))
        return behaviour(request, context)


@pytest.fixture
def served():
    threads = _Threads()
    gate = threads.gate = _Gate()
    handler = grpc.unary_unary_rpc_method_handler(threads.handle, request_deserializer=threads.deserialize,
                                                  response_serializer=lambda data: data)  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(2, thread_name_prefix="handler"), interceptors=[ErrorInterceptor(), gate, DeferredParse()],
                         options=[("grpc.max_receive_message_length", 4 * DEFERRED_PARSE_BYTES)])  # fmt: skip
    stream = grpc.stream_stream_rpc_method_handler(threads.handle_stream, request_deserializer=threads.deserialize,
                                                   response_serializer=lambda data: data)  # fmt: skip
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(SERVICE_NAME, {"CountTokens": handler, "DecodeStream": stream}),
        grpc.method_handlers_generic_handler("test.Other", {"Echo": handler}),
    ])  # fmt: skip
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", -1)])
    call = lambda method, data: channel.unary_unary(method)(data, timeout=10)  # noqa: E731
    call.stream = lambda method, messages: list(channel.stream_stream(method)(iter(messages), timeout=10))
    yield call, threads
    channel.close()
    server.stop(None)


def test_a_large_tokenizer_request_is_parsed_on_its_handler_thread(served):
    call, threads = served
    assert call(f"/{SERVICE_NAME}/CountTokens", b"x" * DEFERRED_PARSE_BYTES) == b"%d" % DEFERRED_PARSE_BYTES
    assert threads.parsed_on == threads.handled_on
    assert threads.handled_on[0].startswith("handler")
    # parsed after the gate: a call let in before draining began is not refused once its parse ends
    assert threads.gate.saw_unparsed == [True]


def test_small_requests_and_other_services_are_parsed_before_the_handler_runs(served):
    call, threads = served
    assert call(f"/{SERVICE_NAME}/CountTokens", b"x" * (DEFERRED_PARSE_BYTES - 1)) == b"%d" % (DEFERRED_PARSE_BYTES - 1)
    assert call("/test.Other/Echo", b"x" * DEFERRED_PARSE_BYTES) == b"%d" % DEFERRED_PARSE_BYTES
    # grpcio's polling thread, not a handler thread (well under a millisecond for a small message)
    assert [name.startswith("handler") for name in threads.parsed_on] == [False, False]
    assert all(name.startswith("handler") for name in threads.handled_on)
    assert threads.gate.saw_unparsed == [False, False]


def test_a_large_request_that_does_not_parse_is_invalid_argument(served):
    call, threads = served
    with pytest.raises(grpc.RpcError) as raised:
        call(f"/{SERVICE_NAME}/CountTokens", b"bad" + b"x" * DEFERRED_PARSE_BYTES)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "do not parse as the CountTokens request message (ValueError: not a message)" in raised.value.details()
    assert threads.handled_on == []  # the handler never saw it


def test_a_deferred_request_is_parsed_once_and_shows_the_messages_fields():
    """Interceptors outside the error interceptor (the request log) read the parsed message's fields."""
    parses: list[bytes] = []
    message = pb.CountTokensRequest(model="m", inputs=[pb.Input(text="x"), pb.Input(text="y")])
    request = DeferredRequest(message.SerializeToString(), lambda data: parses.append(data) or pb.CountTokensRequest.FromString(data))
    assert request.parsed() == message
    assert (request.model, len(request.inputs)) == ("m", 2)
    assert request.parsed() is request.parsed() and len(parses) == 1


def test_a_streams_large_messages_are_parsed_as_the_servicer_reads_them(served):
    call, threads = served
    big = b"x" * DEFERRED_PARSE_BYTES
    assert call.stream(f"/{SERVICE_NAME}/DecodeStream", [b"small", big]) == [b"5", b"%d" % len(big)]
    assert threads.parsed_on[1] == threads.handled_on[1] and threads.parsed_on[1].startswith("handler")
    with pytest.raises(grpc.RpcError) as raised:
        call.stream(f"/{SERVICE_NAME}/DecodeStream", [big, b"bad" + big])
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("messages[1]: the request bytes do not parse as the DecodeStream request message")


class _Context:
    """What LargeMessages reads of grpc's servicer context."""

    def __init__(self, remaining: float | None = None) -> None:
        self.deadline = None if remaining is None else time.monotonic() + remaining
        self.active = True

    def time_remaining(self):
        return None if self.deadline is None else self.deadline - time.monotonic()

    def is_active(self):
        return self.active


def test_at_most_eight_calls_with_a_large_message_are_past_the_parse_at_once():
    """A parsed request holds several times its wire bytes until its call ends, and a worker has 32 handler
    threads: the ninth call with a large message waits, unparsed, until one of the eight ends; calls with a
    small message, and a server stream's answers, are counted as they should be."""
    from tokend.server.deferred_parse import MAX_LARGE_CALLS
    from tokend.server.unary_interceptor import MethodName

    interceptor = DeferredParse()
    unary = MethodName.parse(f"/{SERVICE_NAME}/CountChatTokens", "unary")
    release = threading.Event()
    lock = threading.Lock()
    running = {"now": 0, "most": 0, "parsed": 0}

    def behaviour(request, context):
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
            running["parsed"] += 1
        release.wait(30)
        with lock:
            running["now"] -= 1
        return request

    def call() -> None:
        interceptor.handle(unary, behaviour, DeferredRequest(b"x" * DEFERRED_PARSE_BYTES, bytes), _Context())

    threads = [threading.Thread(target=call) for _ in range(MAX_LARGE_CALLS + 1)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while running["now"] < MAX_LARGE_CALLS and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    assert running["parsed"] == MAX_LARGE_CALLS  # the ninth waits, its message unparsed
    # a small message does not wait
    assert interceptor.handle(unary, lambda request, context: request, b"small", _Context()) == b"small"
    release.set()
    for thread in threads:
        thread.join(30)
    assert running["most"] == MAX_LARGE_CALLS and running["parsed"] == MAX_LARGE_CALLS + 1
    assert interceptor.places.held == 0

    # a server stream holds its place until its answers end
    stream = MethodName.parse(f"/{SERVICE_NAME}/ChunkStream", "server_stream")
    answers = interceptor.handle_stream(stream, lambda request, context: iter([request, request]),
                                        DeferredRequest(b"y" * DEFERRED_PARSE_BYTES, bytes), _Context())  # fmt: skip
    assert next(answers) == b"y" * DEFERRED_PARSE_BYTES and interceptor.places.held == 1
    assert list(answers) == [b"y" * DEFERRED_PARSE_BYTES] and interceptor.places.held == 0


def test_a_call_waiting_for_a_place_leaves_at_its_deadline_or_when_cancelled():
    from tokend.server.deferred_parse import LargeMessages
    from tokend.service.errors import CallCancelled, DeadlineExpired, ServiceUnavailable

    places = LargeMessages(limit=1, max_wait_seconds=0.5)
    leave = places.enter(_Context())
    with pytest.raises(DeadlineExpired, match="places of large request messages"):
        places.enter(_Context(remaining=0.2))
    cancelled = _Context()
    cancelled.active = False
    with pytest.raises(CallCancelled):
        places.enter(cancelled)
    with pytest.raises(ServiceUnavailable, match="busy with large requests"):
        places.enter(_Context())  # no deadline: max_wait_seconds
    leave()
    leave()  # idempotent
    assert places.held == 0
    places.enter(_Context())()  # a place is free again at once


def test_calls_waiting_for_a_place_leave_the_threads_renders_may_not_take():
    """Calls waiting for a place hold their handler thread. Unbounded, the calls past the eight took every one
    of a worker's 32 threads while the eight held their places (a server stream whose client does not read, a
    call waiting in the work gate for memory that unread answers hold): streams and every small call then waited
    for a thread (up to 60 s). Large-message calls now hold at most the threads chat renders may
    (grpc_server.py), the others refused at once (UNAVAILABLE, retry)."""
    from tokend.server.deferred_parse import MAX_LARGE_CALLS
    from tokend.server.grpc_server import STREAM_THREADS, THREADS_PER_WORKER, UNARY_THREADS
    from tokend.service.errors import CallCancelled, ServiceUnavailable

    places = DeferredParse().places
    leaves = [places.enter(_Context()) for _ in range(MAX_LARGE_CALLS)]
    contexts = [_Context(remaining=20) for _ in range(THREADS_PER_WORKER - MAX_LARGE_CALLS)]
    outcomes: list[str] = []

    def call(context) -> None:
        try:
            places.enter(context)()
            outcomes.append("entered")
        except ServiceUnavailable:
            outcomes.append("refused")
        except CallCancelled:
            outcomes.append("cancelled")
        except Exception as exc:  # noqa: BLE001
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=call, args=(context,)) for context in contexts]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    threads_held = places.held + places.waiting
    refused = outcomes.count("refused")
    for context in contexts:  # the waiters' clients go away
        context.active = False
    for thread in threads:
        thread.join(10)
    for leave in leaves:
        leave()
    assert threads_held <= THREADS_PER_WORKER - STREAM_THREADS - UNARY_THREADS, (threads_held, outcomes)  # 32 before
    assert refused == THREADS_PER_WORKER - threads_held  # at once, not after a wait
    assert places.held == places.waiting == 0


def test_a_call_refused_while_it_waited_for_a_place_is_never_parsed(caplog):
    """A call that leaves the wait for a place (busy, its deadline, its cancellation) is refused unparsed; its
    bytes were kept, and the request log (further out) read its model and inputs from them after the refusal,
    parsing the whole message outside any place: the memory the places bound, spent by every refused call."""
    import logging

    from tokend.server.deferred_parse import LargeMessages
    from tokend.server.interceptor_chain import InterceptorChain
    from tokend.server.logging_interceptor import LoggingInterceptor

    caplog.set_level(logging.INFO, logger="tokend.server.rpc")
    threads = _Threads()
    places = LargeMessages(limit=1, max_wait_seconds=0.3)
    handler = grpc.unary_unary_rpc_method_handler(threads.handle, request_deserializer=threads.deserialize,
                                                  response_serializer=lambda data: data)  # fmt: skip
    stream = grpc.unary_stream_rpc_method_handler(lambda request, context: iter([threads.handle(request, context)]),
                                                  request_deserializer=threads.deserialize, response_serializer=lambda data: data)  # fmt: skip
    chain = InterceptorChain([LoggingInterceptor(), ErrorInterceptor(), DeferredParse(places=places)])
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[chain],
                         options=[("grpc.max_receive_message_length", 4 * DEFERRED_PARSE_BYTES)])  # fmt: skip
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, {"CountTokens": handler, "ChunkStream": stream})])
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    leave = places.enter(_Context())  # the one place is taken: the next large call waits 0.3 s, then UNAVAILABLE
    try:
        with pytest.raises(grpc.RpcError) as unary:
            channel.unary_unary(f"/{SERVICE_NAME}/CountTokens")(b"x" * DEFERRED_PARSE_BYTES, timeout=10)
        with pytest.raises(grpc.RpcError) as streamed:
            list(channel.unary_stream(f"/{SERVICE_NAME}/ChunkStream")(b"y" * DEFERRED_PARSE_BYTES, timeout=10))
        time.sleep(0.2)  # the handlers' request log is written after the status
    finally:
        leave()
        channel.close()
        server.stop(None)
    assert unary.value.code() == streamed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert threads.parsed_on == []  # two parses before: the request log's
    assert sum(record.name == "tokend.server.rpc" for record in caplog.records) == 2


class _Refusing(UnaryInterceptor):
    """Where the availability gate and the stream slots sit (between the error interceptor and DeferredParse),
    refusing every call as they do while the worker starts or drains, or its streams are all taken."""

    wrap_streams = True

    def handle(self, method, behaviour, request, context):
        from tokend.service.errors import ServiceUnavailable

        raise ServiceUnavailable("this worker is draining; retry")

    def handle_stream(self, method, behaviour, request, context):
        return self.handle(method, behaviour, request, context)


def test_a_call_refused_further_out_before_its_parse_is_never_parsed(caplog):
    """The request log reads a request's model and inputs: a large request refused before its parse (the
    availability gate while a worker starts or drains, the stream slots) was parsed for them, after the refusal
    and before the prechecks (an Encode of 4,900,000 empty inputs: 0.16 s and +212 MiB). Only a message already
    parsed shows its fields now."""
    import logging

    from tokend.server.interceptor_chain import InterceptorChain
    from tokend.server.logging_interceptor import LoggingInterceptor

    caplog.set_level(logging.INFO, logger="tokend.server.rpc")
    threads = _Threads()
    handler = grpc.unary_unary_rpc_method_handler(threads.handle, request_deserializer=threads.deserialize,
                                                  response_serializer=lambda data: data)  # fmt: skip
    chain = InterceptorChain([LoggingInterceptor(), ErrorInterceptor(), _Refusing(), DeferredParse()])
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[chain],
                         options=[("grpc.max_receive_message_length", 4 * DEFERRED_PARSE_BYTES)])  # fmt: skip
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, {"CountTokens": handler})])
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(f"/{SERVICE_NAME}/CountTokens")(b"x" * DEFERRED_PARSE_BYTES, timeout=10)
        time.sleep(0.2)  # the request log is written after the status
    finally:
        channel.close()
        server.stop(None)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert threads.parsed_on == []  # one parse before: the request log's
    assert sum(record.name == "tokend.server.rpc" for record in caplog.records) == 1
