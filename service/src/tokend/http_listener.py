"""The threaded HTTP server of tokend's two small HTTP ports: the playground and the supervisor's /metrics.

What socketserver's defaults lacked, and why each bound is here:
- **a real listen backlog** (``LISTEN_BACKLOG``; the kernel caps it at ``net.core.somaxconn``): with the
  default of 5, 20 simultaneous connections to an idle playground made 13 wait ≥ 1 s for a SYN retransmit
  and reset some; 50 simultaneous scrapes made 39 wait.
- **a bound on connections** (``max_connections``): one thread per connection, so a flood of connections
  (or of clients that send nothing) cannot make thousands of threads. A connection over the bound gets
  ``overload_response`` (a 503 with Retry-After) and is closed, from the accepting thread, without waiting.
- **the slowest reader gives way** (``EVICT_AFTER_SECONDS``): when every slot is taken, the connection that has
  waited longest for its client — mid-request, or idle between keep-alive requests — is closed to make room,
  if it has waited that long. 300 connections each sending a header line every 5 s took all 256 slots for as
  long as their client wished: every playground call and every /metrics scrape got 503 (or a broken pipe).
  A request counts as read once its headers are (a handler that reads a body says when it has it:
  ``request_read``); a connection the server is answering is never closed.
- **quiet about clients that go away**: a client that resets or times out mid-request is normal on the
  internet; socketserver printed a 20-line traceback for each (22 MB of log in one test). Those are one
  debug line now; anything else a handler raises is one error line with its traceback.

Not handled: TLS, HTTP/2, request deadlines beyond the handler's per-read ``timeout`` (a client that sends
one byte per read timeout keeps its thread until the slots run out and it is the slowest); a client that opens
connections faster than the slowest gives way (it then competes with legitimate clients for each freed slot).

    listener = HttpListener(("127.0.0.1", 0), SomeRequestHandler, max_connections=64)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    ...; listener.shutdown(); listener.server_close()
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HttpListener", "LISTEN_BACKLOG", "DEFAULT_MAX_CONNECTIONS", "EVICT_AFTER_SECONDS", "plain_overload_response"]

LISTEN_BACKLOG = 1024
DEFAULT_MAX_CONNECTIONS = 256
# A connection that has waited this long for its client's request may be closed for a new one when every slot
# is taken: a real client sends its headers at once, and a body of the largest request in a few seconds.
EVICT_AFTER_SECONDS = 2.0
# Errors of a connection whose client went away (or never finished its request in time).
_GONE = (ConnectionError, TimeoutError, socket.timeout)

_log = logging.getLogger("tokend.http_listener")


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
        self._reading: dict[socket.socket, float] = {}  # connection -> since when it waits for its client
        super().__init__(address, type(handler.__name__, (_ReadTracking, handler), {}))

    def waiting_for_client(self, connection: socket.socket) -> None:
        """The connection waits for (the rest of) a request from its client: it may give way to a new one."""
        with self._lock:
            self._reading.setdefault(connection, time.monotonic())

    def request_read(self, connection: socket.socket) -> None:
        """The connection's request has been read: the server answers it, nothing closes it under the answer."""
        with self._lock:
            self._reading.pop(connection, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False) and not (self._close_slowest() and self._slots.acquire(timeout=1.0)):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)  # starts the connection's thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.request_read(request)
            self._slots.release()

    def _close_slowest(self) -> bool:
        """Close the connection that has waited longest for its client, if over EVICT_AFTER_SECONDS (its thread's
        read ends, and its slot comes free): True if one was."""
        with self._lock:
            if not self._reading:
                return False
            connection, since = min(self._reading.items(), key=lambda item: item[1])
            if time.monotonic() - since < EVICT_AFTER_SECONDS:
                return False
            del self._reading[connection]
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        _log.debug("closed a connection that waited %.1f s for its request, to make room", time.monotonic() - since)
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
        self.server.waiting_for_client(self.connection)

    def handle_one_request(self) -> None:
        self.server.waiting_for_client(self.connection)
        super().handle_one_request()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed and self.headers.get("Content-Length", "0").strip() in ("", "0"):
            self.server.request_read(self.connection)  # no body to wait for; one with a body: the handler says
        return parsed
