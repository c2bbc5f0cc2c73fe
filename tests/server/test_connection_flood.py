"""A client that opens connections without end (issue 13): a worker holds at most ``--max-connections``.

Each connection is a file descriptor and ~17 KiB of the worker at rest; with no cap, a flood of idle
connections grew a worker without bound and, once its descriptors ran out, new clients and health checks
timed out. Past the cap gRPC closes a new connection as it accepts it; the connections already open (the
well-behaved client's) keep their answers, and once the flood goes new clients connect again.
"""

from __future__ import annotations

import os
import resource
import socket
import time

import grpc
import pytest
import tiktoken
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tokend_api.v1 import tokenizer_pb2 as pb

from support.server import start_server

CAP = 40
FLOOD = 150
# An HTTP/2 client's first bytes: the preface and an empty SETTINGS frame (what a gRPC client sends first).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _still_open(sock: socket.socket) -> bool:
    """False once the server has closed the connection (end of stream or reset); what it sent is drained."""
    sock.setblocking(False)
    try:
        while True:
            if not sock.recv(65536):
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def _count(stub, text: str) -> int:
    request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
    return stub.CountTokens(request, timeout=10).counts[0]


def test_a_connection_flood_takes_at_most_the_cap_and_open_connections_keep_their_answers():
    expected = len(tiktoken.get_encoding("cl100k_base").encode("hello world, once more"))
    with start_server("--max-connections", str(CAP)) as server:
        (pid,) = server.worker_pids()
        channel = server.channel()
        stub = server.stub(channel)
        assert _count(stub, "hello world, once more") == expected  # its connection is open before the flood
        before = _open_files(pid)
        flood = []
        for _ in range(FLOOD):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            sock.sendall(PREFACE)
            flood.append(sock)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sum(map(_still_open, flood)) > CAP:
            time.sleep(0.2)
        held = sum(map(_still_open, flood))
        grown = _open_files(pid) - before
        try:
            assert held <= CAP, f"{held} of {FLOOD} flooding connections held open (cap {CAP})"
            assert grown <= CAP + 5, f"the worker's open files grew by {grown} (cap {CAP})"
            assert _count(stub, "hello world, once more") == expected
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            for sock in flood:
                sock.close()
            channel.close()
        # The flood gone, a new client connects and is answered (its first attempt may meet a slot not yet freed).
        deadline = time.monotonic() + 10
        while True:
            with server.channel() as fresh:
                try:
                    assert _count(server.stub(fresh), "hello world, once more") == expected
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
            time.sleep(0.2)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_the_cap_holds_on_each_address_the_worker_listens_on():
    """gRPC counts connections per listener, and it makes one listener per address the host resolves to: a worker
    on ``localhost`` (127.0.0.1 and ::1) holds the cap on each, twice in all (docs/api.md says so)."""
    cap = 5
    with start_server("--max-connections", str(cap), "--host", "localhost") as server:
        flood = {}
        for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
            flood[address] = []
            for _ in range(4 * cap):
                sock = socket.create_connection((address, server.port), timeout=5)
                sock.sendall(PREFACE)
                flood[address].append(sock)
        try:
            deadline = time.monotonic() + 10
            held = {}
            while True:
                held = {address: sum(map(_still_open, socks)) for address, socks in flood.items()}
                if all(count <= cap for count in held.values()) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        finally:
            for socks in flood.values():
                for sock in socks:
                    sock.close()
    # (one 127.0.0.1 connection may be the harness' health check's, not yet closed)
    assert all(count <= cap for count in held.values()) and sum(held.values()) >= 2 * cap - 1, held


def test_a_cap_the_file_limit_cannot_hold_is_lowered_to_fit_it():
    """Where the hard open-file limit is below --max-connections + 256, the cap was kept (a warning said so) and
    a flood used up the worker's descriptors: a new client's call hung until its deadline (gRPC could not
    accept), as with no cap at all. The cap is now lowered to what the limit holds: the flood is refused at
    once past it and the worker keeps descriptors for its files."""
    import sys

    limit, flood_size = 600, 700
    command = ("prlimit", f"--nofile={limit}:{limit}", sys.executable, "-m", "tokend.server")
    with start_server(command=command) as server:
        (pid,) = server.worker_pids()
        (warning,) = server.events("file_limit_low")
        channel = server.channel()
        stub = server.stub(channel)
        expected = len(tiktoken.get_encoding("cl100k_base").encode("hello"))
        assert _count(stub, "hello") == expected  # its connection is open before the flood
        flood = []
        try:
            for _ in range(flood_size):
                sock = socket.create_connection((server.host, server.port), timeout=5)
                sock.sendall(PREFACE)
                flood.append(sock)
            time.sleep(1.0)
            held = sum(map(_still_open, flood))
            files = _open_files(pid)
            started = time.monotonic()
            with server.channel(**{"grpc.use_local_subchannel_pool": 1}) as fresh:  # a connection of its own
                with pytest.raises(grpc.RpcError) as refused:
                    _count(server.stub(fresh), "hello")
            waited = time.monotonic() - started
            assert _count(stub, "hello") == expected
        finally:
            for sock in flood:
                sock.close()
    # refused at once (before: DEADLINE_EXCEEDED after the call's 10 s: the worker could not accept it)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and waited < 5, (refused.value.code(), waited)
    assert held <= limit - 256 and files < limit - 100, (held, files)  # before: all 700 open, 600 files
    assert warning["max_connections"] == limit - 256 and warning["max_connections_asked"] == 2048, warning


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")
def test_a_cap_lowered_to_fit_the_file_limit_holds_on_two_listeners():
    """``--host localhost``: gRPC listens on 127.0.0.1 and ::1 and holds the cap on each. The cap lowered to fit
    the hard file limit (600 - 256 = 344) was held twice: 2 x 344 connections need more descriptors than the
    worker has, and a flood on both addresses used them all up; a new client hung until its deadline. The cap is
    now what the limit holds shared among the listeners (172 each): the flood is refused past it, the new client
    at once (or answered), and the worker keeps descriptors for its files."""
    import sys

    limit, flood_per_address = 600, 400
    command = ("prlimit", f"--nofile={limit}:{limit}", sys.executable, "-m", "tokend.server")
    with start_server("--host", "localhost", command=command) as server:
        (pid,) = server.worker_pids()
        (warning,) = server.events("file_limit_low")
        channel = server.channel()
        stub = server.stub(channel)
        expected = len(tiktoken.get_encoding("cl100k_base").encode("hello"))
        assert _count(stub, "hello") == expected  # its connection is open before the flood
        flood: dict[str, list[socket.socket]] = {"127.0.0.1": [], "::1": []}
        try:
            for _ in range(flood_per_address):
                for address, socks in flood.items():
                    try:
                        sock = socket.create_connection((address, server.port), timeout=5)
                        sock.sendall(PREFACE)
                    except OSError:  # the worker out of descriptors: the kernel's backlog full
                        continue
                    socks.append(sock)
            time.sleep(1.0)
            held = {address: sum(map(_still_open, socks)) for address, socks in flood.items()}
            files = _open_files(pid)
            started = time.monotonic()
            code = "OK"
            with server.channel(**{"grpc.use_local_subchannel_pool": 1}) as fresh:  # a connection of its own
                try:
                    _count(server.stub(fresh), "hello")
                except grpc.RpcError as error:
                    code = error.code().name
            waited = time.monotonic() - started
            assert _count(stub, "hello") == expected
        finally:
            for socks in flood.values():
                for sock in socks:
                    sock.close()
    print(f"new client: {code} after {waited:.2f} s; held {held}; worker files {files} of {limit}")
    per_listener = (limit - 256) // 2
    # before: DEADLINE_EXCEEDED after the call's 10 s (the worker out of descriptors could not accept it)
    assert code in ("OK", "UNAVAILABLE") and waited < 5, (code, waited, held, files)
    assert all(count <= per_listener for count in held.values()) and files < limit - 100, (held, files)
    assert warning["max_connections"] == per_listener and warning["listeners"] == 2, warning


def _listening_sockets() -> int:
    """How many TCP sockets of this process listen (Linux: /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                count += fields[3] == "0A" and fields[9] in inodes  # state LISTEN
    return count


@pytest.mark.parametrize("host", ["localhost", "0.0.0.0", "127.0.0.1", "[::]", "[::1]"])
def test_the_listeners_counted_for_the_file_limit_are_those_grpc_opens(host):
    """A guard on gRPC's behaviour (grpc_server.listener_count): the file limit is fitted to the cap on every
    listener, so a listener gRPC opens and the count misses lets a flood use up the worker's descriptors."""
    from concurrent import futures

    from tokend.server.grpc_server import listener_count

    if ":" in host and not _ipv6_loopback():
        pytest.skip("no IPv6 loopback")
    server = grpc.server(futures.ThreadPoolExecutor(1))
    before = _listening_sockets()
    try:
        assert server.add_insecure_port(f"{host}:0") > 0
        server.start()
        opened = _listening_sockets() - before
    finally:
        server.stop(None)
    assert listener_count(host) == opened, (host, opened)


def test_the_open_file_limit_is_raised_to_hold_the_cap():
    from tokend.server.file_limit import FILES_BESIDE_CONNECTIONS, fit_file_limit

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 500 + FILES_BESIDE_CONNECTIONS
    assert hard == resource.RLIM_INFINITY or hard >= needed, "this machine's hard limit is below the test's need"
    resource.setrlimit(resource.RLIMIT_NOFILE, (300, hard))
    try:
        assert fit_file_limit(500) == (needed, hard)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (needed, hard)
        assert fit_file_limit(10) == (needed, hard)  # never lowered
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
