"""The playground parses and answers at most eight large bodies at once (issue 13): a body of 64 KiB or more
waits, read but unparsed, for one of eight places, as gRPC's large request messages do; sixteen may wait,
more get a 503 at once; small bodies never wait. Before, every connection (up to 256) parsed its body at once:
64 bodies of 40 MB took the playground from 964 to 1,822-2,280 MiB (docs/decisions.md, probe30). A real
playground on loopback; the endpoint is held inside by a test double so that the places stay taken."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.waiting import wait_for
from tokend.playground import PlaygroundServer
from tokend.playground.large_bodies import LARGE_BODY_BYTES, MAX_LARGE_BODIES, MAX_LARGE_BODIES_WAITING

from .json_client import JsonClient, parse_reply
from .playground_process import running_playground

LARGE = {"model": "cl100k_base", "text": "x " * LARGE_BODY_BYTES}  # 128 KiB of text: a large body
SMALL = {"model": "cl100k_base", "text": "hello"}


@pytest.fixture
def held(registry):
    """A playground whose count endpoint holds every call until ``release`` is set; ``inside`` counts the calls
    past their parse (each took the service's answer path as usual once released)."""
    server = PlaygroundServer(registry, port=0).start()
    release, inside, lock = threading.Event(), [0], threading.Lock()
    real_count = server.api.count

    def held_count(body):
        with lock:
            inside[0] += 1
        release.wait(60)
        return real_count(body)

    server.api.count = held_count
    try:
        yield server, JsonClient(server.url), release, inside
    finally:
        release.set()
        server.stop()


def test_large_bodies_are_parsed_and_answered_eight_at_a_time(held):
    server, client, release, inside = held
    with ThreadPoolExecutor(12) as pool:
        replies = [pool.submit(client.post, "/api/v1/count", LARGE) for _ in range(12)]
        wait_for(lambda: server.large_bodies.waiting == 4, timeout=60, what="four large bodies waiting for a place")
        assert inside[0] == MAX_LARGE_BODIES and server.large_bodies.running == MAX_LARGE_BODIES
        # A small body does not wait for a place (its endpoint is not the held one).
        assert client.post("/api/v1/encode", SMALL).json()["results"][0]["ids"] == [15339]
        release.set()
        statuses = [reply.result(timeout=60).status for reply in replies]
    assert statuses == [200] * 12 and inside[0] == 12
    # Every place given back (a handler gives its place back just after its answer is written).
    wait_for(lambda: server.large_bodies.running == 0, timeout=30, what="the places given back")


def test_bodies_past_the_waiting_bound_get_a_503_at_once(held):
    server, client, release, inside = held
    total = MAX_LARGE_BODIES + MAX_LARGE_BODIES_WAITING + 1
    with ThreadPoolExecutor(total) as pool:
        replies = [pool.submit(client.post, "/api/v1/count", LARGE) for _ in range(total)]
        refused = wait_for(lambda: [reply.result() for reply in replies if reply.done()], timeout=60,
                           what="the body past the waiting bound refused")  # fmt: skip
        assert [reply.status for reply in refused] == [503] and refused[0].error["code"] == "unavailable"
        assert server.large_bodies.waiting == MAX_LARGE_BODIES_WAITING and inside[0] == MAX_LARGE_BODIES
        release.set()
        statuses = sorted(reply.result(timeout=60).status for reply in replies)
    assert statuses == [200] * (total - 1) + [503]


def test_a_body_that_trickles_in_gives_its_place_back(registry, monkeypatch, oracle):
    # A place is taken before the body is read; a client sending it slower than its allowance (here 0.5 s:
    # 10 s and 1 s per MiB in service) gets a 408 and the place is free again.
    monkeypatch.setattr("tokend.playground.request_handler.body_read_seconds", lambda length: 0.5)
    with PlaygroundServer(registry, port=0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /api/v1/count HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"model\": ")
            reply = parse_reply(b"".join(iter(lambda: sock.recv(65536), b"")))  # the server closes after it
        assert reply.status == 408 and reply.error["code"] == "deadline_exceeded", reply.body[:300]
        assert "10 of 100,000 bytes" in reply.error["message"]
        wait_for(lambda: server.large_bodies.running == 0, timeout=30, what="the place given back")
        expected = len(oracle["cl100k_base"].encode(LARGE["text"]))
        assert JsonClient(server.url).post("/api/v1/count", LARGE).json()["total"] == expected


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024


def _steady_rss_mib(pid: int) -> float:
    """The process's RSS once it stops moving (its models load in the background after it listens)."""
    previous = _rss_mib(pid)
    for _ in range(60):
        time.sleep(1.0)
        now = _rss_mib(pid)
        if abs(now - previous) < 2:
            return now
        previous = now
    raise AssertionError(f"the playground's RSS did not settle in 60 s (last {previous:.0f} MiB)")


def test_memory_the_large_bodies_freed_goes_back_when_the_last_place_is_given_back():
    """Eight bodies of ~13 MB parsed at once: glibc kept what their parses freed in its arenas (the playground
    stayed +114 MiB after them, measured), until the last place given back returns it (+36 MiB)."""
    argv = ["-m", "tokend.playground", "--host", "127.0.0.1", "--port", "0", "--reload-interval", "0"]
    with running_playground(argv) as playground:
        client = JsonClient(playground.url)
        assert client.post("/api/v1/count", SMALL).status == 200
        before = _steady_rss_mib(playground.process.pid)
        body = json.dumps({"model": "cl100k_base", "text": "ab\u00e9 " * 1_500_000}).encode()
        with ThreadPoolExecutor(MAX_LARGE_BODIES) as pool:
            statuses = [reply.status for reply in pool.map(lambda _: client.post("/api/v1/count", body),
                                                           range(MAX_LARGE_BODIES))]
        assert statuses == [200] * MAX_LARGE_BODIES
        wait_for(lambda: _rss_mib(playground.process.pid) < before + 70, timeout=10,
                 what=f"the playground's RSS back within 70 MiB of {before:.0f} MiB")
