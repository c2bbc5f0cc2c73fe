"""The threaded HTTP server of tokend's two small HTTP ports: the playground and the supervisor's /metrics.

What socketserver's defaults lacked, and why each bound is here:
- **a real listen backlog** (``LISTEN_BACKLOG``; the kernel caps it at ``net.core.somaxconn``): with the
  default of 5, 20 simultaneous connections to an idle playground made 13 wait ≥ 1 s for a SYN retransmit
  and reset some; 50 simultaneous scrapes made 39 wait.
- **a bound on connections** (``max_connections``): one thread per connection, so a flood of connections
  (or of clients that send nothing) cannot make thousands of threads. A connection over the bound gets
  ``overload_response`` (a 503 with Retry-After) and is closed, from the accepting thread, without waiting.
- **the slowest reader gives way** (``EVICT_AFTER_SECONDS``): when every slot is taken, a connection that has
  waited that long for its client — mid-request, or idle between keep-alive requests — is closed to make room:
  the one whose client has sent nothing for longest (if for that long too), else the one whose client has sent
  the fewest bytes a second since its wait began. 300 connections each sending a header line every 5 s took all
  256 slots for as long as their client wished: every playground call and every /metrics scrape got 503 (or a
  broken pipe). The longest wait alone chose the connection at first, and that closed a legitimate upload
  slower than 2 s but progressing (a body of a few MB over a slow link) before clients that had sent nothing
  for seconds; bytes are counted as the handler reads them (a header line once whole, a body as it comes).
  A request counts as read once its headers are (a handler that reads a body says when it has it:
  ``request_read``); a connection the server is answering is never closed.
- **connection threads kept for the next connection** (``IDLE_THREAD_SECONDS``): a thread that has served its
  connection waits for the next one instead of ending, and a new thread is started only when none waits. A
  thread's start makes the accepting thread wait for it twice (to run, then to say it runs), and while a chat
  template renders each wait for the GIL lasts up to a switch interval: every new connection queued behind
  the others' starts (docs/decisions.md, issue 13, helper pgflood33). Threads idle that long end.
- **quiet about clients that go away**: a client that resets or times out mid-request is normal on the
  internet; socketserver printed a 20-line traceback for each (22 MB of log in one test). Those are one
  debug line now; anything else a handler raises is one error line with its traceback.

Not handled: TLS, HTTP/2, request deadlines beyond the handler's per-read ``timeout`` (a client that sends
one byte per read timeout keeps its thread until the slots run out and it is the slowest); a client that opens
connections faster than the slowest gives way (it then competes with legitimate clients for each freed slot);
clients that keep sending faster than a legitimate upload (each of its connections outlasts that upload: the
upload is then the slowest, and gives way).

    listener = HttpListener(("127.0.0.1", 0), SomeRequestHandler, max_connections=64)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    ...; listener.shutdown(); listener.server_close()
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

__all__ = [
    "HttpListener", "ClientWait", "LISTEN_BACKLOG", "DEFAULT_MAX_CONNECTIONS", "EVICT_AFTER_SECONDS", "IDLE_THREAD_SECONDS",
    "plain_overload_response", "slowest_client",
]  # fmt: skip

LISTEN_BACKLOG = 1024
DEFAULT_MAX_CONNECTIONS = 256
# A connection that has waited this long for its client's request may be closed for a new one when every slot
# is taken: a real client sends its headers at once, and a body of the largest request in a few seconds.
EVICT_AFTER_SECONDS = 2.0
# A connection thread that has waited this long for a new connection ends (the listener keeps the threads its
# busiest moments needed, about one a connection slot at most, for the moments after).
IDLE_THREAD_SECONDS = 60.0
# Errors of a connection whose client went away (or never finished its request in time).
_GONE = (ConnectionError, TimeoutError, socket.timeout)

_log = logging.getLogger("tokend.http_listener")
# The most one step of a body read asks for (``read1``: what one read of the socket brings, up to this), so that
# its bytes count as they come, not once all are here. An 8 MiB body in steps: 6.8-9.3 ms against 2.4-4.9 ms in
# one read (medians of 15, 5 runs, load 6); decoding and parsing it as JSON then takes ~37 ms.
_READ_CHUNK = 1 << 20
_Connection = TypeVar("_Connection")


@dataclass
class ClientWait:
    """A connection waiting for its client's request: since when, when its client last sent bytes, how many."""

    since: float  # monotonic time the wait began
    heard_at: float  # monotonic time bytes last came (``since`` until then)
    received: int = 0  # bytes since the wait began


def slowest_client(waits: Mapping[_Connection, ClientWait], now: float, after: float) -> _Connection | None:
    """The connection to close for a new one: of those waiting ``after`` seconds or more, the one whose client has
    been silent longest (for ``after`` seconds at least), else the one whose client sent the fewest bytes a
    second since its wait began; None when none has waited that long.

    >>> upload, quiet, trickle = ClientWait(0.0, 9.9, 50_000), ClientWait(5.0, 6.0, 20), ClientWait(6.0, 9.8, 30)
    >>> slowest_client({"upload": upload, "quiet": quiet, "trickle": trickle}, now=10.0, after=2.0)
    'quiet'
    >>> slowest_client({"upload": upload, "trickle": trickle}, now=10.0, after=2.0)  # 5,000 bytes a second; 7.5
    'trickle'
    """
    waited = [(connection, wait) for connection, wait in waits.items() if now - wait.since >= after]
    silent = [(connection, wait) for connection, wait in waited if now - wait.heard_at >= after]
    if silent:
        return min(silent, key=lambda item: item[1].heard_at)[0]
    if waited:
        return min(waited, key=lambda item: item[1].received / (now - item[1].since))[0]
    return None


def plain_overload_response(retry_after: int = 1) -> bytes:
    """A complete HTTP/1.1 503 response that closes the connection (what an over-the-bound client gets)."""
    body = b"too many connections; retry shortly\n"
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: %d\r\nConnection: close\r\n\r\n%s" % (len(body), retry_after, body)
    )


class HttpListener(ThreadingHTTPServer):
    """ThreadingHTTPServer with the bounds of the module docstring; IPv6 when the host has a colon."""

    daemon_threads = True  # a hung client never blocks shutdown
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        overload_response: bytes | None = None,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(max_connections)
        self._overload_response = overload_response or plain_overload_response()
        self._lock = threading.Lock()
        self._reading: dict[socket.socket, ClientWait] = {}  # the connections waiting for their client
        self._accepted: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()  # for the idle threads
        self._idle = 0  # connection threads waiting for a connection, less the connections queued for them
        self._connection_threads: set[threading.Thread] = set()
        super().__init__(address, type(handler.__name__, (_ReadTracking, handler), {}))

    def waiting_for_client(self, connection: socket.socket) -> None:
        """The connection waits for (the rest of) a request from its client: it may give way to a new one."""
        with self._lock:
            if connection not in self._reading:
                now = time.monotonic()
                self._reading[connection] = ClientWait(now, now)

    def client_sent(self, connection: socket.socket, count: int) -> None:
        """``count`` bytes of the request the connection waits for came from its client."""
        if count <= 0:
            return
        with self._lock:
            wait = self._reading.get(connection)
            if wait is not None:
                wait.heard_at = time.monotonic()
                wait.received += count

    def request_read(self, connection: socket.socket) -> None:
        """The connection's request has been read: the server answers it, nothing closes it under the answer."""
        with self._lock:
            self._reading.pop(connection, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and not (self._close_slowest() and self._slots.acquire(timeout=1.0)):
            self._refuse(request)
            return
        try:
            self._hand_over(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def _hand_over(self, request: Any, client_address: Any) -> None:
        """The accepted connection to an idle connection thread, or to a new one when none is idle."""
        with self._lock:
            idle = self._idle > 0
            if idle:
                self._idle -= 1  # that thread's: it takes the connection from the queue
        if not idle:
            thread = threading.Thread(
                target=self._serve_connections, args=((request, client_address),), name="tokend-http-connection", daemon=True,
            )
            with self._lock:
                self._connection_threads.add(thread)
            thread.start()
            return
        self._accepted.put((request, client_address))

    def _serve_connections(self, first: tuple[Any, Any]) -> None:
        """A connection thread's life: serve its connection, then wait for the next one; ends when it has
        waited ``IDLE_THREAD_SECONDS`` for none, or when the listener closes."""
        connection: tuple[Any, Any] | None = first
        try:
            while connection is not None:
                self.process_request_thread(*connection)
                del connection  # not held while the thread waits
                with self._lock:
                    self._idle += 1
                while True:
                    try:
                        connection = self._accepted.get(timeout=IDLE_THREAD_SECONDS)
                        break
                    except queue.Empty:
                        with self._lock:
                            # Idle and not handed a connection meanwhile (each one queued took one from ``_idle``):
                            # this thread's count goes; else a connection is queued for it, and it waits on.
                            if self._idle > 0:
                                self._idle -= 1
                                return
        finally:
            with self._lock:
                self._connection_threads.discard(threading.current_thread())

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_read(request)
            self._slots.release()

    def server_close(self) -> None:
        """Close the listening socket and end the connection threads: the idle ones now, the others once their
        connection ends (not waited for, as the stdlib's daemon threads were not: a browser's kept connection
        would hold the close for its 30 s timeout)."""
        super().server_close()
        with self._lock:
            threads = len(self._connection_threads)
        for _ in range(threads):
            self._accepted.put(None)  # (a thread serving a connection takes one when it is done, and ends)

    def _close_slowest(self) -> bool:
        """Close the connection ``slowest_client`` picks (its thread's read ends, and its slot comes free): True
        if there was one."""
        with self._lock:
            now = time.monotonic()
            connection = slowest_client(self._reading, now, EVICT_AFTER_SECONDS)
            if connection is None:
                return False
            wait = self._reading.pop(connection)
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        _log.debug(
            "closed a connection that waited %.1f s for its request (%d bytes came, the last %.1f s ago), to make room",
            now - wait.since, wait.received, now - wait.heard_at,
        )  # fmt: skip
        return True

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, _GONE):
            _log.debug("client %s went away: %s: %s", client_address, type(error).__name__, error)
        else:
            _log.error("request from %s failed", client_address, exc_info=True)

    def _refuse(self, request: socket.socket) -> None:
        try:
            request.setblocking(False)  # the accepting thread never waits for a client
            request.send(self._overload_response)
        except OSError:
            pass
        self.shutdown_request(request)


class _ReadTracking(BaseHTTPRequestHandler):
    """Tells the listener when a connection waits for its client's request and when the request has been read
    (mixed into every handler class the listener is given)."""

    server: HttpListener

    def setup(self) -> None:  # once a connection (wsgiref's handler reads its one request without the method below)
        super().setup()
        self.rfile = _CountedReader(self.rfile, self._client_sent)
        self.server.waiting_for_client(self.connection)

    def _client_sent(self, count: int) -> None:
        self.server.client_sent(self.connection, count)

    def handle_one_request(self) -> None:
        self.server.waiting_for_client(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self.headers.get("Content-Length", "0").strip() in ("", "0"):
            self.server.request_read(self.connection)  # no body to wait for; one with a body: the handler says
        return parsed


class _CountedReader:
    """A connection's buffered reader that tells ``sent(count)`` how many bytes each read brought: a line once
    whole, a body ``_READ_CHUNK`` at most at a time (a large ``read`` would say nothing until all had come)."""

    def __init__(self, reader: Any, sent: Callable[[int], None]) -> None:
        self._reader = reader
        self._sent = sent

    def readline(self, limit: int = -1) -> bytes:
        line = self._reader.readline(limit)
        self._sent(len(line))
        return line

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = self._reader.read()
            self._sent(len(data))
            return data
        chunks = []
        while size > 0:
            chunk = self._reader.read1(min(size, _READ_CHUNK))  # what one read of the socket brings, at most
            if not chunk:
                break
            self._sent(len(chunk))
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def readinto1(self, buffer: Any) -> int:
        """What one read of the socket brings (or the buffer holds), into ``buffer``; counted as ``read``'s."""
        count = self._reader.readinto1(buffer)
        self._sent(count)
        return count

    def __iter__(self) -> Any:
        return iter(self.readline, b"")

    def __getattr__(self, name: str) -> Any:  # close, closed, peek, read1, readinto, fileno, ...
        return getattr(self._reader, name)
