"""The HTTP ports (the playground, and the supervisor's /metrics) take bursts of connections and clients that
vanish: a real listen backlog (socketserver's default of 5 made 13 of 20 simultaneous connections wait ≥ 1 s
for a SYN retransmit, some were reset), a bound on connections, and no traceback for a dropped connection
(each printed 20 lines: 22 MB of log in one test)."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tokend.http_listener import HttpListener
from tokend.playground import PlaygroundServer

from .json_client import JsonClient, parse_reply

BURST = 64


def _connect_all(port: int, count: int, timeout: float = 5.0) -> tuple[list[socket.socket], int]:
    """``count`` non-blocking connects to 127.0.0.1:``port``; returns the sockets and how many completed the
    TCP handshake (the kernel completes a handshake only while the listen backlog has room)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
    established: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(established) < count and time.monotonic() < deadline:
        _, writable, _ = select.select([], [s for s in sockets if s.fileno() not in established], [], 0.1)
        for sock in writable:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                established.add(sock.fileno())
    return sockets, len(established)


def test_a_burst_of_connections_is_queued_not_dropped_while_nothing_accepts(registry):
    # Listening, not yet accepting: only the backlog decides how many handshakes complete.
    server = PlaygroundServer(registry, port=0)
    try:
        sockets, established = _connect_all(server.port, BURST)
        assert established == BURST, f"only {established} of {BURST} connections completed their handshake"
        server.start()
        for sock in sockets:
            sock.setblocking(True)
            sock.settimeout(30)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        replies = [b"".join(iter(lambda sock=sock: sock.recv(4096), b"")) for sock in sockets]
        assert all(parse_reply(reply).status == 200 for reply in replies)
    finally:
        for sock in sockets:
            sock.close()
        server.stop()


def test_the_listener_class_has_a_real_backlog():
    listener = HttpListener(("127.0.0.1", 0), _Nothing)
    try:
        sockets, established = _connect_all(listener.server_address[1], BURST)
        assert established == BURST
    finally:
        for sock in sockets:
            sock.close()
        listener.server_close()


class _Nothing:
    def __init__(self, *args: object) -> None:
        pass


def test_simultaneous_requests_are_all_answered(playground):
    client = JsonClient(playground.url)
    with ThreadPoolExecutor(BURST) as pool:
        replies = list(pool.map(lambda _: client.get("/healthz"), range(BURST)))
    assert [reply.status for reply in replies] == [200] * BURST


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a client that crashed or timed out does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_clients_that_vanish_leave_no_traceback(registry, capfd):
    with PlaygroundServer(registry, port=0) as server:
        body = b'{"model": "cl100k_base", "text": "' + b"word " * 200_000 + b'"}'
        for number in range(30):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            if number % 3 == 0:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # gone in the middle of the headers
            elif number % 3 == 1:
                sock.sendall(b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")  # mid-body
            else:  # gone before reading a large answer
                sock.sendall(b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                time.sleep(0.05)
            _reset(sock)
        time.sleep(0.5)  # the handler threads notice
        assert JsonClient(server.url).get("/healthz").status == 200
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out, captured.err[-3000:]


def test_connections_over_the_bound_get_a_json_503(registry):
    server = PlaygroundServer(registry, port=0, max_connections=4)
    server.start()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        time.sleep(0.2)  # the four are being served (each waits for its request line)
        reply = parse_reply(JsonClient(server.url).raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert reply.status == 503 and reply.headers["Content-Type"] == "application/json"
        assert "Content-Security-Policy" in reply.headers and "Retry-After" in reply.headers
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + 10
        while JsonClient(server.url).get("/healthz").status != 200:  # slots free again once they closed
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        server.stop()


def test_when_every_slot_is_taken_the_connection_that_waited_longest_for_its_client_gives_way(registry, monkeypatch):
    """300 connections each sending a header line every 5 s took all 256 slots: every playground call (and, on the
    same listener, every /metrics scrape) got 503 for as long as their client wished. Now, with every slot taken,
    the connection that has waited longest for its request (over EVICT_AFTER_SECONDS) is closed for the new one."""
    from tokend import http_listener

    monkeypatch.setattr(http_listener, "EVICT_AFTER_SECONDS", 0.3, raising=False)
    server = PlaygroundServer(registry, port=0, max_connections=4)
    server.start()
    slow = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        for sock in slow:
            sock.sendall(b"POST /api/v1/count HTTP/1.1\r\nHost: x\r\n")  # and then a header line now and then
        time.sleep(0.1)
        assert parse_reply(JsonClient(server.url).raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")).status == 503  # not yet
        time.sleep(0.5)
        for _ in range(3):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
            assert JsonClient(server.url).get("/healthz").status == 200
    finally:
        for sock in slow:
            sock.close()
        server.stop()


def _keep_alive_get(port: int, path: str) -> tuple[socket.socket, int]:
    """A GET on a new connection left open after its answer (keep-alive): the socket and the answer's status."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return sock, parse_reply(head + b"\r\n\r\n" + body).status


def test_an_upload_that_keeps_coming_outlasts_clients_that_send_nothing_or_little(registry, monkeypatch):
    """The connection that had waited longest for its request gave way when every slot was taken, whatever its
    client was doing: a legitimate upload slower than EVICT_AFTER_SECONDS but progressing (here the first
    connection, its body coming 2 KB a tenth of a second) was closed before connections whose clients had sent
    nothing for seconds. Now the silent ones go first, then the one sending the fewest bytes a second (a header
    line a tenth of a second); the upload is answered."""
    import json

    import tiktoken

    from tokend import http_listener

    monkeypatch.setattr(http_listener, "EVICT_AFTER_SECONDS", 0.5, raising=False)
    server = PlaygroundServer(registry, port=0, max_connections=4)
    server.start()
    text = "an upload that keeps coming " * 1500  # 42 KB: 2 s at 2 KB a tenth of a second
    body = json.dumps({"model": "cl100k_base", "text": text}).encode()
    upload = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    others = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(3)]
    trickle, newcomers = others[2], []
    try:
        upload.sendall(b"POST /api/v1/count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body))  # fmt: skip
        trickle.sendall(b"POST /api/v1/count HTTP/1.1\r\nHost: x\r\n")
        sent, started = 0, time.monotonic()
        while sent < len(body):
            try:
                upload.sendall(body[sent : sent + 2048])
            except OSError as error:
                pytest.fail(f"the upload was closed after {sent} bytes, {time.monotonic() - started:.1f} s: {error}")
            sent += 2048
            with contextlib.suppress(OSError):  # closed for the third newcomer
                trickle.sendall(b"X-Slow: 1\r\n")
            # Once every connection has waited past the bound, three new clients come and stay (keep-alive): each
            # takes a slot (the two silent connections', then the trickle's), never the upload's.
            if time.monotonic() - started > 0.7 and not newcomers:
                for _ in range(3):
                    sock, status = _keep_alive_get(server.port, "/healthz")
                    newcomers.append(sock)
                    assert status == 200
            time.sleep(0.1)
        assert newcomers, "the upload ended before the newcomers came; send it slower"
        reply = parse_reply(b"".join(iter(lambda: upload.recv(65536), b"")))
        assert reply.status == 200, reply
        assert json.loads(reply.body)["total"] == len(tiktoken.get_encoding("cl100k_base").encode(text))
        for sock in others:  # each was closed by the server to make room
            sock.settimeout(5)
            assert sock.recv(1) == b""
    finally:
        for sock in [upload, *others, *newcomers]:
            sock.close()
        server.stop()


def test_an_answer_its_client_does_not_read_keeps_its_memory_reserved(registry):
    """A large answer was built inside the call's memory reservation and written after it was given back: a
    client that does not read kept its answer in the playground for up to the socket's 30 s, and 256 connections
    may (40 decodes of 15 MiB answers whose clients never read: +1.1 GiB of the playground). The reservation now
    lasts until the answer is written, so such answers wait for room like large requests (the same 40: +270 MiB)."""
    from tokend.service import WorkAdmission
    import tiktoken

    encoding = tiktoken.get_encoding("cl100k_base")
    token = next(i for i in range(encoding.n_vocab) if len(encoding.decode_single_token_bytes(i)) == 128)
    body = json.dumps({"model": "cl100k_base", "inputs": [[token] * 65_536]}).encode()  # an 8 MiB answer
    admission = WorkAdmission(64 << 20)
    with PlaygroundServer(registry, host="127.0.0.1", port=0, admission=admission) as server:
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.connect(("127.0.0.1", server.port))
        reader.sendall(b"POST /api/v1/decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
        deadline = time.monotonic() + 10
        while admission.running == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # the answer is built and its writing stalls on the client's full window
        held_while_unread = admission.running, admission.held_bytes
        reader.settimeout(10)
        received = 0
        with contextlib.suppress(TimeoutError):
            while received < 8 << 20:
                chunk = reader.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
        reader.close()
        time.sleep(0.2)
        assert held_while_unread[0] == 1 and held_while_unread[1] > 8 << 20, held_while_unread  # (0, 0) before
        assert received > 8 << 20
        assert (admission.running, admission.held_bytes) == (0, 0)
