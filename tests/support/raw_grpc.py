"""A raw gRPC call over HTTP/2 (the h2 library), to send framing that grpcio clients never produce: a
message whose compressed flag is set without a grpc-encoding, corrupt gzip, an unknown encoding.

    status, message, reset = raw_call("127.0.0.1", port, "/tokend.v1.Tokenizer/CountTokens", request_bytes,
                                      compressed_flag=True, encoding=None)
    # ('13', 'Compression bit set but no encoding configured', None)

Not handled: TLS, several calls per connection, response messages (only the status is read).
"""

from __future__ import annotations

import socket
import struct

import h2.config
import h2.connection
import h2.events

__all__ = ["raw_call"]


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
