"""A Tokenizer stream whose client sends nothing for ``--stream-idle-timeout`` seconds is ended, and its slot freed.

Why: a bidirectional stream (DecodeStream) holds one of its worker's ``STREAM_SLOTS`` while it is open
(stream_slots.py), and waits for its client's next message for as long as the client likes. Four streams that
sent one message and then nothing held every slot of a worker for ever (hostile round 3, repro 10): everyone
else's ChunkStream and DecodeStream got UNAVAILABLE. Now such a stream ends with DEADLINE_EXCEEDED once its
client has been silent for the timeout (30 s by default); a stream whose messages keep coming, however slowly,
never does. Each wait counts afresh from the moment the handler asks for the next message, so time the server
spends answering (or the client spends reading) is not counted against the client.

    server = grpc.server(pool, interceptors=[..., ErrorInterceptor(), StreamSlots(), IdleStreams(30.0)])

How: grpcio's request iterator has no timeout — ``next`` blocks until a message arrives or the call ends — and
only the handler's own thread can end its call with a status of ours. So each stream gets a reader thread that
takes one message from the iterator when the handler asks for one (never more: nothing is read ahead or
queued), and the handler waits for it at most the timeout. Past it the handler raises ``StreamIdle``; the
status it sends closes the call, which wakes the reader (its ``next`` ends), and the reader leaves.

Why DEADLINE_EXCEEDED: it is the status the call would have had with a deadline of its own, gRPC's retry
guidance does not retry it automatically (a client that idles would only idle again), and it is not CANCELLED,
which reads as the client's own cancellation. Rejected: ``context.cancel()`` from a timer (no thread per
stream), because its client sees a bare CANCELLED with no word of why.

Not handled: a client that sends a message just under the timeout, for ever, still holds its slot — the stream's
lifetime is bounded only by ``--max-connection-age`` plus the grace period (320 s by default), its connection's
end. Client-streaming RPCs with a single answer (tokend has none) are not wrapped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.server.unary_interceptor import MethodName, UnaryInterceptor
from tokend.service.errors import DeadlineExpired, RequestError

__all__ = ["IdleStreams", "StreamIdle"]

_MESSAGE, _END, _FAILED = "message", "end", "failed"


class StreamIdle(DeadlineExpired):
    """The client of a stream sent nothing for the idle timeout; the stream was ended (DEADLINE_EXCEEDED)."""

    def __init__(self, timeout: float, received: int) -> None:
        RequestError.__init__(
            self, f"no message from the client for {timeout:g} s after {received} messages (stream_idle_timeout); "
            "the stream was ended to free its slot. Send the next message sooner, or open a new stream when there is more"
        )  # fmt: skip
        self.completed = received
        self.total = received + 1


class IdleStreams(UnaryInterceptor):
    wrap_streams = True
    wrap_unary = False

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout  # seconds; 0 = never

    def handle_stream(self, method: MethodName, behaviour: Callable[[Any, Any], Iterator[Any]], request: Any, context: Any) -> Iterator[Any]:
        if method.service != SERVICE_NAME or method.grpc_type != "bidi_stream" or self.timeout <= 0:
            return behaviour(request, context)
        return self._bounded(behaviour, request, context)

    def _bounded(self, behaviour: Callable[[Any, Any], Iterator[Any]], requests: Any, context: Any) -> Iterator[Any]:
        bounded = IdleBoundedRequests(requests, self.timeout)
        try:
            yield from behaviour(bounded, context)
        finally:
            bounded.close()


class IdleBoundedRequests:
    """The request messages of one stream; ``next`` raises ``StreamIdle`` when none came within ``timeout``."""

    def __init__(self, requests: Iterator[Any], timeout: float) -> None:
        self._requests = requests
        self._timeout = timeout
        self._asked = threading.Semaphore(0)  # released once for each message the handler asks for
        self._answers: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()  # (kind, message or exception)
        self._reader: threading.Thread | None = None
        self._closed = False
        self._received = 0

    def __iter__(self) -> IdleBoundedRequests:
        return self

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, name="tokend-stream-reader", daemon=True)
            self._reader.start()
        self._asked.release()
        try:
            kind, value = self._answers.get(timeout=self._timeout)
        except queue.Empty:
            self.close()
            raise StreamIdle(self._timeout, self._received) from None
        if kind == _MESSAGE:
            self._received += 1
            return value
        self._closed = True
        if kind == _END:
            raise StopIteration
        raise value

    def close(self) -> None:
        """No more messages will be asked for: a reader waiting to be asked leaves (one inside the iterator
        leaves when the call ends)."""
        self._closed = True
        self._asked.release()

    def _read(self) -> None:
        while True:
            self._asked.acquire()
            if self._closed:
                return
            try:
                message = next(self._requests)
            except StopIteration:
                self._answers.put((_END, None))
                return
            except BaseException as exc:  # the call ended under it (grpc.RpcError): the handler raises it
                self._answers.put((_FAILED, exc))
                return
            self._answers.put((_MESSAGE, message))
