"""Large Tokenizer request messages are parsed on the call's handler thread, after the availability gate,
not by grpcio on its polling thread.

Why: grpcio runs request deserializers on the worker's one polling thread, which every other call of the
worker needs to start and to end; parsing 6-8 MiB there (UTF-8 checks, a str of the text: 2.4-4.5 ms, even
with the GIL released) held up every call that arrived meanwhile. So a message of ``DEFERRED_PARSE_BYTES``
or more is handed on unparsed, as a ``DeferredRequest``, and ``DeferredParse``, the innermost interceptor,
parses it just before the servicer runs. Innermost, because a call the availability gate let in must not be
refused later: parsing before the gate, a call that was in flight when draining began (counted, visible in
the metrics) could be refused UNAVAILABLE once its parse ended (tests/reliability/test_sigterm.py caught it).
Bytes that do not parse are INVALID_ARGUMENT as anywhere else (``UndecodableRequest.refusal``). Small
messages, and other services' (health, reflection), are parsed by grpcio as before.

A request's batch is counted from its bytes first (``prechecks``: batch_items.py, chat_shape.py) and refused
unparsed when the service would refuse it from those counts.

At most ``MAX_LARGE_CALLS`` unary or server-streaming calls with such a message are past this point at once
(``LargeMessages``); others wait here, unparsed, first come first served, for their deadline or
``MAX_LARGE_WAIT_SECONDS`` at most (then DEADLINE_EXCEEDED / UNAVAILABLE; a cancelled one leaves), and at most
``MAX_LARGE_WAITING`` of them (16: with the eight, the threads chat renders may hold; past it UNAVAILABLE at
once, so a worker's stream and unary threads are never theirs). Why: a
parsed request holds several times its wire bytes until the call ends (a 4.3 MB chat of 86,000 messages:
~25 MiB of dicts), the work gate (service/admission) sees a request only after its parse and lets "small"
work through, and a worker has 32 handler threads: 32 such chats at once peaked at +780-925 MiB against
+370-470 MiB with the 8 threads a worker had before. Eight is that bound again. Streams from the client
(DecodeStream) are bounded by their slots and parse message by message; they do not wait here.

A message larger than any acceptable request can be on the wire (``largest``: wire_bound.py) is not parsed at
all: its bytes are let go at once and the call is refused RESOURCE_EXHAUSTED naming ``max_request_bytes``, as
the service would have refused it after the parse (``OversizedRequest``).

    interceptors=[..., ErrorInterceptor(), AvailabilityInterceptor(availability), StreamSlots(),
                  DeferredParse(largest=largest_request_message(max_request_bytes=..., max_batch_items=...),
                                max_request_bytes=...,
                                prechecks={**batch_prechecks(service), **chat_prechecks(service)})]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from tokend_api import MAX_REQUEST_BYTES, SERVICE_NAME

from tokend.server.error_interceptor import UndecodableRequest, tolerant
from tokend.server.grpc_server import STREAM_THREADS, THREADS_PER_WORKER, UNARY_THREADS
from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.service import RequestLimitExceeded
from tokend.service.admission import WorkAdmission

__all__ = ["DeferredParse", "DeferredRequest", "LargeMessages", "OversizedRequest", "DEFERRED_PARSE_BYTES", "MAX_LARGE_CALLS"]

# Request messages of at least this many bytes are parsed on the handler thread.
DEFERRED_PARSE_BYTES = 64 << 10
# Calls with such a message past the parse at once, per worker, and the longest one waits for its turn.
MAX_LARGE_CALLS = 8
MAX_LARGE_WAIT_SECONDS = 60.0
# Calls waiting for a place, each holding its handler thread: with the eight, as many threads as chat renders may
# hold (grpc_server.py), so the stream and unary threads stay free. Unbounded, the calls past the eight took all
# 32 threads while the eight held their places (a server stream whose client does not read, a call waiting in
# the work gate), and every other call of the worker waited for a thread; past it, UNAVAILABLE at once.
MAX_LARGE_WAITING = THREADS_PER_WORKER - STREAM_THREADS - UNARY_THREADS - MAX_LARGE_CALLS


class LargeMessages(WorkAdmission):
    """The worker's gate (service/admission) with a budget of calls, each taking one place: at most ``limit``
    at once, the others waiting in arrival order, ``max_waiting`` at most (then ServiceUnavailable at once).

        places = LargeMessages(limit=8)
        leave = places.enter(context)      # waits; raises DeadlineExpired / ServiceUnavailable / CallCancelled
        try: ...
        finally: leave()
    """

    def __init__(
        self, limit: int = MAX_LARGE_CALLS, max_wait_seconds: float = MAX_LARGE_WAIT_SECONDS,
        max_waiting: int = MAX_LARGE_WAITING,
    ) -> None:  # fmt: skip
        super().__init__(limit, small_bytes=0, max_waiting=max_waiting, max_wait_seconds=max_wait_seconds,
                         waiting_for="for one of the places of large request messages")  # fmt: skip

    @property
    def held(self) -> int:
        """Places taken now."""
        return self.running

    def enter(self, context: Any) -> Callable[[], None]:
        """Wait for a place for the call of ``context`` (grpc's: ``time_remaining``, ``is_active``); returns
        the function that gives it back (idempotent)."""
        return self.reserve(1, call=context)


class DeferredRequest:
    """A large request message's bytes until ``parsed()``. Interceptors further out that read the message's
    fields (the request log's model and items) get the parsed message's (none if it did not parse, or was
    not parsed: a call refused before its parse)."""

    __slots__ = ("_data", "_parse", "_message")

    def __init__(self, data: bytes, parse: Callable[[bytes], Any]) -> None:
        """``parse``: the message or an ``UndecodableRequest`` (error_interceptor.tolerant)."""
        self._data: bytes | None = data
        self._parse = parse
        self._message: Any = None

    def check(self, precheck: Callable[[bytes], None]) -> None:
        """``precheck(bytes)`` before the parse; when it raises (refusing the request unparsed) the bytes are let
        go, and interceptors further out see no fields (the request log's model and items would parse them)."""
        if self._data is not None:
            try:
                precheck(self._data)
            except BaseException:
                self._data = None
                raise

    def let_go(self) -> None:
        """The call was refused before its parse: the bytes are let go unparsed, as ``check`` does (interceptors
        further out see no fields)."""
        self._data = None

    def parsed(self) -> Any:
        """The message, or an ``UndecodableRequest``; parsed once, the bytes let go."""
        if self._data is not None:
            data, self._data = self._data, None
            self._message = self._parse(data)
        return self._message

    def __getattr__(self, name: str) -> Any:
        # Only a message already parsed shows its fields: one refused before its parse (the availability gate, the
        # stream slots, the wait for a place, a precheck) is not parsed for the request log after its refusal.
        if self._message is None:
            raise AttributeError(name)
        return getattr(self._message, name)


class OversizedRequest:
    """Stands in for a request message larger than any acceptable request (its bytes are not kept); never
    reaches a servicer."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def refusal(self, largest: int, max_request_bytes: int) -> RequestLimitExceeded:
        """RESOURCE_EXHAUSTED naming max_request_bytes, as the service's refusal after a parse would."""
        return RequestLimitExceeded(
            MAX_REQUEST_BYTES, max_request_bytes, self.size,
            unit=f"bytes of request message, more than the {largest:,} any request within the limits takes",
            hint="send fewer or shorter inputs per request",
        )  # fmt: skip


class DeferredParse(UnaryInterceptor):
    """``largest``: the most bytes an acceptable request message takes (wire_bound.largest_request_message);
    None: no bound (tests). ``prechecks``: {method: check(bytes)} run on a deferred message's bytes before it is
    parsed, raising the service's error to refuse it unparsed (batch_items.py, chat_shape.py)."""

    wrap_streams = True

    def __init__(
        self, largest: int | None = None, max_request_bytes: int = 0,
        prechecks: Mapping[str, Callable[[bytes], None]] | None = None,
        places: LargeMessages | None = None,
    ) -> None:  # fmt: skip
        """``places``: the worker's LargeMessages (None: a new one of MAX_LARGE_CALLS)."""
        self._largest = largest
        self._max_request_bytes = max_request_bytes
        self._prechecks = dict(prechecks or {})
        self.places = places if places is not None else LargeMessages()

    def wrap_deserializer(self, method: MethodName, deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
        if deserializer is None or method.service != SERVICE_NAME:
            return deserializer

        parse = tolerant(deserializer)
        largest = self._largest

        def deserialize(data: bytes) -> Any:
            if len(data) < DEFERRED_PARSE_BYTES:
                return deserializer(data)
            if largest is not None and len(data) > largest:
                return OversizedRequest(len(data))
            return DeferredRequest(data, parse)

        return deserialize

    def handle(self, method: MethodName, behaviour: Callable[[Any, Any], Any], request: Any, context: Any) -> Any:
        if method.grpc_type == "client_stream":
            return behaviour(self._parsed_messages(request, method), context)
        if not isinstance(request, DeferredRequest):
            return behaviour(self._parsed(request, method), context)
        leave = self._place(request, context)
        try:
            return behaviour(self._parsed(request, method), context)
        finally:
            leave()

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.grpc_type == "bidi_stream":
            return behaviour(self._parsed_messages(request, method), context)
        if not isinstance(request, DeferredRequest):
            return behaviour(self._parsed(request, method), context)
        return self._in_place(behaviour, request, method, context)

    def _in_place(self, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, method: MethodName, context: Any) -> Iterator[Any]:
        """A server stream's answers, its place held until the stream ends (its request lives as long)."""
        leave = self._place(request, context)
        try:
            yield from behaviour(self._parsed(request, method), context)
        finally:
            leave()

    def _place(self, request: DeferredRequest, context: Any) -> Callable[[], None]:
        """A place for the call; when it leaves the wait refused (busy, its deadline, cancelled), its bytes are
        let go unparsed: kept, the request log (further out) read its model and inputs from them after the
        refusal, parsing the message outside any place."""
        try:
            return self.places.enter(context)
        except BaseException:
            request.let_go()
            raise

    def _parsed(self, request: Any, method: MethodName, where: str = "request") -> Any:
        if isinstance(request, OversizedRequest):
            raise request.refusal(self._largest or 0, self._max_request_bytes)
        if not isinstance(request, DeferredRequest):
            return request
        precheck = self._prechecks.get(method.method)
        if precheck is not None:
            request.check(precheck)
        message = request.parsed()
        if isinstance(message, UndecodableRequest):
            raise message.refusal(method, where)
        return message

    def _parsed_messages(self, messages: Iterable[Any], method: MethodName) -> Iterator[Any]:
        for index, message in enumerate(messages):
            yield self._parsed(message, method, f"messages[{index}]")
