"""What a request costs the playground's process beside a flood (issue 13): the process has one GIL, and while a
chat template renders (one always does while renders wait for the turn) every thread that gives it up for a
system call waits to get it back. So a request makes few such calls: a small answer goes out in one write with
its headers, a retried refusal (busy) is not a log line each time, and a new connection is handed to a thread
that waits for one rather than a thread started for it. Real servers on loopback; counts, not timings."""

from __future__ import annotations

import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from support.chat_models import build_chat_registry
from tokend import http_listener
from tokend.http_listener import HttpListener
from tokend.playground import PlaygroundServer
from tokend.playground import refusal_log as refusal_log_module
from tokend.playground.refusal_log import RefusalLog
from tokend.registry import Registry
from tokend.registry.chat.render_turns import RENDER_TURNS

from .json_client import JsonClient, parse_reply

SPINNING_CHAT = {"model": "templated", "messages": [{"role": "user", "content": "spin"}]}


@pytest.fixture()
def socket_writes(monkeypatch):
    """Every write of a response to a connection's socket in this process, as (thread ident, bytes)."""
    writes: list[tuple[int, int]] = []
    write = socketserver._SocketWriter.write

    def counted(self, data):
        writes.append((threading.get_ident(), len(data)))
        return write(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", counted)
    return writes


def _post_on_new_connection(port: int, path: str, body: bytes) -> bytes:
    request = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (path.encode(), len(body), body)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_small_answer_goes_out_in_one_write_with_its_headers(playground, oracle, socket_writes):
    """Two writes before (headers, then body): each gave up the GIL, which a rendering template then held."""
    text = "A polite sentence of a few words."
    raw = _post_on_new_connection(playground.port, "/api/v1/count", b'{"model": "cl100k_base", "text": "%s"}' % text.encode())
    reply = parse_reply(raw)
    assert reply.status == 200 and reply.json()["total"] == len(oracle["cl100k_base"].encode(text))
    assert [size for _, size in socket_writes] == [len(raw)]


def test_a_large_answer_is_whole_and_not_copied_to_be_joined(playground, oracle, socket_writes):
    text = "tokens, " * 20_000  # 40,000 ids: an answer of ~250 KB, over the one-write size
    raw = _post_on_new_connection(playground.port, "/api/v1/encode", b'{"model": "cl100k_base", "text": "%s"}' % text.encode())
    reply = parse_reply(raw)
    assert reply.status == 200 and reply.json()["results"][0]["ids"] == oracle["cl100k_base"].encode(text)
    sizes = [size for _, size in socket_writes]
    assert len(sizes) == 2 and sizes[1] == len(reply.body) and sum(sizes) == len(raw)


def test_head_and_errors_are_answered_whole(playground, socket_writes):
    head = parse_reply(JsonClient(playground.url).raw(b"HEAD /api/v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert head.status == 200 and head.body == b"" and int(head.headers["Content-Length"]) > 0
    missing = JsonClient(playground.url).post("/api/v1/count", {"model": "no-such-model", "text": "x"})
    assert missing.status == 404 and missing.error["code"] == "not_found"


@pytest.fixture(scope="module")
def chat_playground(tmp_path_factory):
    registry = Registry.open(build_chat_registry(tmp_path_factory.mktemp("chat") / "registry"))
    with PlaygroundServer(registry, host="127.0.0.1", port=0) as server:
        yield server


def test_retried_refusals_are_logged_once_an_interval_not_once_each(chat_playground, monkeypatch, caplog):
    """Every "busy" 503 was a warning line of its own: beside 40 clients sending spinning chats, ~270 lines a
    second, each a write to stderr that gave up the GIL."""
    monkeypatch.setattr(RENDER_TURNS, "max_calls", 0)  # every call that would render is refused: "busy"
    client = JsonClient(chat_playground.url)
    with caplog.at_level(logging.WARNING, logger="tokend.playground"):
        replies = [client.post("/api/v1/count_chat", SPINNING_CHAT) for _ in range(20)]
    assert {reply.status for reply in replies} == {503}
    assert all("was not rendered" in reply.error["message"] for reply in replies)
    lines = [record.getMessage() for record in caplog.records if record.name.startswith("tokend.playground")]
    assert len(lines) == 1 and "/api/v1/count_chat: 503" in lines[0] and "was not rendered" in lines[0]


def test_the_next_refusal_line_says_how_many_were_left_out(monkeypatch, caplog):
    now = [100.0]
    monkeypatch.setattr(refusal_log_module.time, "monotonic", lambda: now[0])
    log = RefusalLog(logging.getLogger("tokend.playground.test"), interval=10.0)
    with caplog.at_level(logging.WARNING, logger="tokend.playground.test"):
        logged = [log.refused("/api/v1/count_chat", 503, "busy") for _ in range(5)]
        other = log.refused("/api/v1/encode_chat", 503, "busy")  # another path: its own line
        now[0] += 10.5
        later = log.refused("/api/v1/count_chat", 503, "busy")
    assert logged == [True, False, False, False, False] and other and later
    messages = [record.getMessage() for record in caplog.records]
    assert messages[-1] == "playground request /api/v1/count_chat: 503 busy (and 4 more like it in the last 10 s)"
    assert log.left_out("/api/v1/count_chat", 503) == 0


def test_refusals_of_ever_new_paths_keep_the_log_bounded():
    """The path is the client's (GET /api/v1/models/<ref>: 503 while its model loads or the registry cannot be read,
    every percent-spelling of a ref a path of its own): an entry a path, kept for good, grew without end (20,000
    paths: +9 MB, 20,000 lines). Past MAX_KEYS pairs the other paths share one line a status."""
    import tracemalloc

    lines = []
    logger = logging.getLogger("tokend.playground.test.paths")
    logger.propagate = False  # (pytest's capture would keep every record)
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(None)  # type: ignore[method-assign]  # counted, not kept
    logger.addHandler(handler)
    log = RefusalLog(logger, interval=60.0)
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for number in range(20_000):
            log.refused(f"/api/v1/models/cl100k%5F{number:06d}" + "x" * 200, 503, "still loading")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        logger.removeHandler(handler)
    assert len(lines) < 1_000 and grown < 500_000, f"{len(lines):,} lines, {grown:,} bytes for 20,000 refusals"
    assert len(lines) == refusal_log_module.MAX_KEYS + 1  # one a path kept apart, one for all the others
    assert log.left_out(refusal_log_module.OTHER_PATHS, 503) == 20_000 - refusal_log_module.MAX_KEYS - 1


class _Threads(BaseHTTPRequestHandler):
    """Answers every GET with 204 and notes the thread that served it."""

    protocol_version = "HTTP/1.1"
    served: list[threading.Thread] = []

    def do_GET(self) -> None:  # noqa: N802
        type(self).served.append(threading.current_thread())
        self.send_response(204)
        self.send_header("Connection", "close")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _get_on_new_connection(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        while sock.recv(4096):
            pass


def _listener_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "tokend-http-connection"]


def test_connections_one_after_another_are_served_by_threads_kept_for_them(monkeypatch):
    """A thread started for each connection made the accepting thread wait for the GIL twice a connection (the
    thread's start): 20 connections one after another had 20 threads. The threads of earlier connections wait
    for the next ones; a thread idle for IDLE_THREAD_SECONDS ends, and closing the listener ends the idle ones."""
    monkeypatch.setattr(_Threads, "served", [])
    listener = HttpListener(("127.0.0.1", 0), _Threads, max_connections=8)
    serving = threading.Thread(target=listener.serve_forever, daemon=True)
    serving.start()
    try:
        for _ in range(20):
            _get_on_new_connection(listener.server_address[1])
            time.sleep(0.01)  # (the server's thread closes its side after the client saw the end)
        assert len(_Threads.served) == 20
        assert len(set(_Threads.served)) <= 5, "each connection had a thread of its own"
    finally:
        listener.shutdown()
        listener.server_close()
    deadline = time.monotonic() + 10
    while any(thread in _listener_threads() for thread in _Threads.served):
        assert time.monotonic() < deadline, "idle connection threads outlived the listener"
        time.sleep(0.05)


def test_idle_connection_threads_end(monkeypatch):
    monkeypatch.setattr(_Threads, "served", [])
    monkeypatch.setattr(http_listener, "IDLE_THREAD_SECONDS", 0.2)
    listener = HttpListener(("127.0.0.1", 0), _Threads, max_connections=8)
    serving = threading.Thread(target=listener.serve_forever, daemon=True)
    serving.start()
    try:
        with socket.create_connection(("127.0.0.1", listener.server_address[1]), timeout=10) as held:
            held.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a connection mid-request: its thread is not idle
            _get_on_new_connection(listener.server_address[1])
            deadline = time.monotonic() + 10
            while len(_Threads.served) < 1 or _Threads.served[0].is_alive():
                assert time.monotonic() < deadline, "an idle connection thread did not end"
                time.sleep(0.05)
            held.sendall(b"\r\n")
            assert held.recv(4096).startswith(b"HTTP/1.1 204")  # its thread served it all along
        assert len(set(_Threads.served)) == 2
    finally:
        listener.shutdown()
        listener.server_close()


def test_keep_alive_answers_are_not_held_for_the_clients_acknowledgement(playground, monkeypatch):
    """Headers and body written apart met Nagle's algorithm and the client's delayed ACK: each keep-alive request
    sent right after the last answer took ~44 ms. The connection's socket has TCP_NODELAY (a large answer is
    still two writes)."""
    nodelay = []
    write = socketserver._SocketWriter.write

    def noted(self, data):
        nodelay.append(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        return write(self, data)

    monkeypatch.setattr(socketserver._SocketWriter, "write", noted)
    assert JsonClient(playground.url).get("/api/v1/models").status == 200
    assert nodelay and all(nodelay)
