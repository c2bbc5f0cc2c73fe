"""A TCP proxy on 127.0.0.1 whose answers to the client trickle out at a chosen rate: a client on a slow link.

    from support.throttled_proxy import ThrottledProxy

    with ThrottledProxy(server.port, bytes_per_second=1.5 * 2**20) as proxy:   # proxy.port
        channel = grpc.insecure_channel(f"127.0.0.1:{proxy.port}")

What the client sends goes through at once; what the server sends is read from it no faster than the rate, so
TCP's flow control (a small receive buffer here) holds the server's writes back as a slow reader's link would.
Connections are relayed by daemon threads.
"""

from __future__ import annotations

import socket
import threading
import time

__all__ = ["ThrottledProxy"]


class ThrottledProxy:
    def __init__(self, target_port: int, *, bytes_per_second: float) -> None:
        self.target_port = target_port
        self.bytes_per_second = bytes_per_second
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="throttled-proxy", daemon=True).start()

    def __enter__(self) -> ThrottledProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)  # the server feels the slow reads
            server.connect(("127.0.0.1", self.target_port))
            self._sockets += [client, server]
            threading.Thread(target=self._relay, args=(client, server, None), daemon=True).start()
            threading.Thread(target=self._relay, args=(server, client, self.bytes_per_second), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, bytes_per_second: float | None) -> None:
        started, relayed = time.monotonic(), 0
        try:
            while data := source.recv(16 << 10):
                sink.sendall(data)
                relayed += len(data)
                if bytes_per_second:
                    ahead = relayed / bytes_per_second - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
