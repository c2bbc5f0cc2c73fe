"""A DecodeStream's client may send at most ``--stream-message-rate`` messages a second on average; faster, the
server reads its next message later, and HTTP/2 flow control makes the client's sends wait.

Why: each message of a stream costs its worker ~145 µs of CPU whatever it holds (gRPC's receive and send, the
reader thread's hand-over, the session's checks), so a client sending one-id messages as fast as it can took
84% of a core from one stream (50,000 messages: 7.3 s of CPU), and a worker runs four streams. A generation
sends at most a few hundred to ~1,000 tokens a second; a stream within the rate is never slowed.

    server = grpc.server(pool, interceptors=[..., StreamSlots(), IdleStreams(30.0), StreamPace(1000.0)])

How: a token bucket per stream, of ``rate`` tokens a second and one second's worth deep (a client that
paused may catch up with ``rate`` messages at once); a message takes a token, and the handler sleeps until
one is there before it asks for the message. Nothing is read ahead: messages the server has not asked for
wait in the transport's window, and the client's writes block once it is full. The sleep comes before the
idle timeout's wait (this interceptor sits inside ``IdleStreams``), so pacing never counts as the client's
silence.

Why backpressure, not an error: a legitimate client above the rate (a very fast generator) is slowed, not
broken, and needs no retry logic; a flooding client gains nothing by going faster. Rejected: a limit on
worker CPU per stream (the CPU of one message is spread over gRPC's threads and the handler's, which a
stream cannot be charged for exactly); charging by ids (a message's cost is its framing, not its ids: a
thousand ids decode in less time than one message's overhead, and large messages are bounded like Decode
requests).

Not handled: gRPC's transport reads ahead what its flow-control window holds before the client blocks — with
BDP probing (grpcio's default) up to ~16 MiB, ~450,000 one-id messages, ~25 s of a third of a core in its C
core (outside the GIL) once per stream; turning BDP probing off would keep the window at 64 KiB, but slow
large uploads from distant clients (docs/decisions.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.unary_interceptor import MethodName, UnaryInterceptor

__all__ = ["PacedRequests", "StreamPace"]


class StreamPace(UnaryInterceptor):
    wrap_streams = True
    wrap_unary = False

    def __init__(self, rate: float) -> None:
        self.rate = rate  # messages a second, on average; 0 = unpaced

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME or method.grpc_type != "bidi_stream" or self.rate <= 0:
            return behaviour(request, context)
        return behaviour(PacedRequests(request, self.rate), context)


class PacedRequests:
    """The request messages of one stream, handed out at most ``rate`` a second after a first ``rate`` at once.

    ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(
        self, requests: Iterator[Any], rate: float, *,
        clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self._requests = requests
        self._rate = rate
        self._depth = max(rate, 1.0)  # one second of messages
        self._tokens = self._depth
        self._step = min(self._depth, max(1.0, rate * 0.02))  # messages a held-back stream waits for: 20 ms' worth
        self._clock = clock
        self._sleep = sleep
        self._filled_at = clock()
        self.waited = 0.0  # seconds the stream was held back, in all

    def __iter__(self) -> PacedRequests:
        return self

    def __next__(self) -> Any:
        self._refill()
        if self._tokens < 1.0 - 1e-9:  # (not a float's rounding of a whole token)
            # Held back, it waits for a few messages' worth (20 ms), not one: a thread woken per message cost
            # ~90 µs more a message (237 µs instead of 146), the wake-ups, not the messages.
            wait = (self._step - self._tokens) / self._rate
            self._sleep(wait)
            self.waited += wait
            self._refill()
        # A sleep may wake a little early: the deficit is carried (taken from the next refill), not forgiven.
        self._tokens -= 1.0
        return next(self._requests)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._depth, self._tokens + (now - self._filled_at) * self._rate)
        self._filled_at = now
