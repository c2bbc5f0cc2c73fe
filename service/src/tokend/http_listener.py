"""The threaded HTTP server of tokend's two small HTTP ports: the playground and the supervisor's /metrics.

What socketserver's defaults lacked, and why each bound is here:
- **a real listen backlog** (``LISTEN_BACKLOG``; the kernel caps it at ``net.core.somaxconn``): with the
  default of 5, 20 simultaneous connections to an idle playground made 13 wait ≥ 1 s for a SYN retransmit
  and reset some; 50 simultaneous scrapes made 39 wait.
- **a bound on connections** (``max_connections``): one thread per connection, so a flood of connections
  (or of clients that send nothing) cannot make thousands of threads. A connection over the bound gets
  ``overload_response`` (a 503 with Retry-After) and is closed, from the accepting thread, without waiting.
- **quiet about clients that go away**: a client that resets or times out mid-request is normal on the
  internet; socketserver printed a 20-line traceback for each (22 MB of log in one test). Those are one
  debug line now; anything else a handler raises is one error line with its traceback.

Not handled: TLS, HTTP/2, request deadlines beyond the handler's per-read ``timeout`` (a client that sends
one byte per read timeout keeps its thread; the connection bound caps how many can).

    listener = HttpListener(("127.0.0.1", 0), SomeRequestHandler, max_connections=64)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    ...; listener.shutdown(); listener.server_close()
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any

__all__ = ["HttpListener", "LISTEN_BACKLOG", "DEFAULT_MAX_CONNECTIONS", "plain_overload_response"]

LISTEN_BACKLOG = 1024
DEFAULT_MAX_CONNECTIONS = 256
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
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
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
            self._slots.release()

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
