"""InterceptorChain: the worker's interceptors composed once per method, on a real grpc server on loopback.

grpcio calls a server interceptor's ``intercept_service`` for every call; the chain asks each of its
interceptors once per method and reuses the composed handler, while every call still passes through every
interceptor, outermost first. The worker's own chain is exercised by every test against `tokend serve`
(metrics, logs, errors, drain); this file checks the composition itself.
"""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest

from support.server import free_port
from tokend.server.interceptor_chain import InterceptorChain
from tokend.server.unary_interceptor import UnaryInterceptor

SERVICE = "test.Echo"


class Recording(UnaryInterceptor):
    """Counts its compositions and records the calls it sees, by name, in a shared list."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen, self.compositions = name, seen, 0

    def intercept_service(self, continuation, handler_call_details):
        self.compositions += 1
        return super().intercept_service(continuation, handler_call_details)

    def handle(self, method, behaviour, request, context):
        self.seen.append(f"{self.name}:{method.method}")
        return behaviour(request, context)


def _echo_server(chain: InterceptorChain):
    identity = lambda data: data  # noqa: E731 - bytes in, bytes out
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(lambda request, context, name=name: name.encode() + request,
                                                  request_deserializer=identity, response_serializer=identity)
        for name in ("One", "Two")
    }  # fmt: skip
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[chain])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port(f"127.0.0.1:{free_port()}")
    server.start()
    return server, port


@pytest.fixture
def echo():
    seen: list[str] = []
    outer, inner = Recording("outer", seen), Recording("inner", seen)
    server, port = _echo_server(InterceptorChain([outer, inner]))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = lambda method, data: channel.unary_unary(f"/{SERVICE}/{method}")(data, timeout=10)  # noqa: E731
    yield call, outer, inner, seen
    channel.close()
    server.stop(None)


def test_each_method_is_composed_once_and_every_call_passes_every_interceptor_in_order(echo):
    call, outer, inner, seen = echo
    answers = [call("One", b"-%d" % i) for i in range(20)] + [call("Two", b"-x") for _ in range(5)]
    assert answers == [b"One-%d" % i for i in range(20)] + [b"Two-x"] * 5
    # Composed on the first call of each method only (grpcio alone would have asked 25 times).
    assert (outer.compositions, inner.compositions) == (2, 2)
    assert seen == ["outer:One", "inner:One"] * 20 + ["outer:Two", "inner:Two"] * 5


def test_an_unknown_method_is_unimplemented_and_composes_nothing(echo):
    call, outer, inner, _ = echo
    with pytest.raises(grpc.RpcError) as raised:
        call("Three", b"x")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (outer.compositions, inner.compositions) == (0, 0)


def test_a_new_handler_for_a_method_is_composed_again():
    seen: list[str] = []
    only = Recording("only", seen)
    chain = InterceptorChain([only])
    first = grpc.unary_unary_rpc_method_handler(lambda request, context: b"first")
    second = grpc.unary_unary_rpc_method_handler(lambda request, context: b"second")

    class Details:
        method = f"/{SERVICE}/One"
        invocation_metadata = ()

    composed = [chain.intercept_service(lambda details: handler, Details()) for handler in (first, first, second)]
    assert composed[0] is composed[1] and composed[2] is not composed[0]
    assert only.compositions == 2
    assert composed[2].unary_unary(b"", None) == b"second" and seen == ["only:One"]


class _EndedStream:
    """What a stream's context says once gRPC stopped it without a status of ours."""

    def __init__(self, remaining):
        self.remaining = remaining

    def code(self):
        return None

    def is_active(self):
        return False

    def time_remaining(self):
        return self.remaining


@pytest.mark.parametrize(("remaining", "expected"), [
    (-0.05, grpc.StatusCode.DEADLINE_EXCEEDED),  # gRPC saw the deadline before the stream's own check did
    (0.1, grpc.StatusCode.DEADLINE_EXCEEDED),    # within the slack check_call allows
    (5.0, grpc.StatusCode.CANCELLED),            # the client went away well before its deadline
    (None, grpc.StatusCode.CANCELLED),           # no deadline at all
])  # fmt: skip
def test_a_stream_stopped_by_grpc_counts_its_deadline_or_a_cancel(remaining, expected):
    from tokend.server.unary_interceptor import stream_end_code

    assert stream_end_code(_EndedStream(remaining)) == expected
