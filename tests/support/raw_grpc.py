"""A raw gRPC call over HTTP/2 (the h2 library), to send framing that grpcio clients never produce: a
message whose compressed flag is set without a grpc-encoding, corrupt gzip, an unknown encoding.

    status, message, reset = raw_call("127.0.0.1", port, "/tokend.v1.Tokenizer/CountTokens", request_bytes,
                                      compressed_flag=True, encoding=None)
    # ('13', 'Compression bit set but no encoding configured', None)

    unread = UnreadCalls("127.0.0.1", port)       # one connection whose client never reads an answer
    streams = unread.send("/tokend.v1.Tokenizer/Decode", request_bytes, count=32)
    unread.events(seconds=2.0)                      # what the server sent meanwhile (headers, resets)
    unread.events(seconds=60, until=lambda events: len(events) > 10)   # or only until enough of it came

Not handled: TLS; raw_call makes one call per connection and reads only the status.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Sequence

import h2.config
import h2.connection
import h2.events
import h2.settings

__all__ = ["raw_call", "UnreadCalls"]


def raw_call(
    host: str, port: int, method: str, message: bytes, *, compressed_flag: bool, encoding: str | None,
    timeout: float = 10.0,
) -> tuple[str | None, str | None, str | None]:
    """(grpc-status, grpc-message, RST_STREAM error code or None) of one call."""
    sock = socket.create_connection((host, port), timeout=timeout)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", method), (":authority", f"{host}:{port}"),
               ("content-type", "application/grpc"), ("te", "trailers")]
    if encoding:
        headers.append(("grpc-encoding", encoding))
    stream = conn.get_next_available_stream_id()
    conn.send_headers(stream, headers)
    body = struct.pack(">BI", 1 if compressed_flag else 0, len(message)) + message
    sock.sendall(conn.data_to_send())
    while body:  # respect the server's flow-control window
        window = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
        if window <= 0:
            for event in conn.receive_data(sock.recv(65536)):
                pass
            sock.sendall(conn.data_to_send())
            continue
        chunk, body = body[:window], body[window:]
        conn.send_data(stream, chunk, end_stream=not body)
        sock.sendall(conn.data_to_send())
    result: dict[str, str] = {}
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                result.update(dict(event.headers))
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.ConnectionTerminated)):
                done = True
                if isinstance(event, h2.events.StreamReset):
                    result["reset"] = str(event.error_code)
        sock.sendall(conn.data_to_send())
    sock.close()
    return result.get("grpc-status"), result.get("grpc-message"), result.get("reset")


class UnreadCalls:
    """A connection whose client announces a receive window of 0 (SETTINGS_INITIAL_WINDOW_SIZE) and never
    opens it: the server's answers stay queued in its transport. Requests are sent as the server's window
    allows; settings and pings are answered (h2 does), so the connection stays up."""

    def __init__(self, host: str, port: int) -> None:
        self.authority = f"{host}:{port}"
        self.sock = socket.create_connection((host, port))
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        self.conn.initiate_connection()
        self.received: list[h2.events.Event] = []

    def send(
        self, method: str, message: bytes, *, count: int = 1, headers: Sequence[tuple[str, str]] = ()
    ) -> list[int]:
        """``count`` calls of ``method`` with ``message`` (and ``headers``, e.g. ``("grpc-timeout", "500m")``);
        their stream ids."""
        frame = struct.pack(">BI", 0, len(message)) + message
        streams = []
        for _ in range(count):
            stream = self.conn.get_next_available_stream_id()
            self.conn.send_headers(stream, [(":method", "POST"), (":scheme", "http"), (":path", method),
                                            (":authority", self.authority), ("content-type", "application/grpc"),
                                            ("te", "trailers"), *headers])  # fmt: skip
            sent = 0
            while sent < len(frame):
                self.sock.sendall(self.conn.data_to_send())
                window = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size)
                if window <= 0:
                    self._receive(timeout=10.0)  # the server's WINDOW_UPDATEs
                    continue
                chunk = frame[sent : sent + window]
                self.conn.send_data(stream, chunk, end_stream=sent + len(chunk) == len(frame))
                sent += len(chunk)
            self.sock.sendall(self.conn.data_to_send())
            streams.append(stream)
        return streams

    def events(
        self, seconds: float, *, until: Callable[[list[h2.events.Event]], bool] | None = None
    ) -> list[h2.events.Event]:
        """Every event received so far, reading for ``seconds`` more — or, given ``until``, only until
        ``until(events)`` holds (``seconds`` then bounds the wait: what a server does within a fixed time
        depends on how loaded the machine is, what it has done once a condition holds does not)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not (until is not None and until(self.received)):
            self._receive(timeout=left)
        return self.received

    def _receive(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except TimeoutError:
            return
        if not data:
            raise ConnectionError("the server closed the connection")
        self.received.extend(self.conn.receive_data(data))
        self.sock.sendall(self.conn.data_to_send())

    def close(self) -> None:
        self.sock.close()
