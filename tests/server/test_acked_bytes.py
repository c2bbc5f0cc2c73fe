"""AckedBytes (server/acked_bytes.py): the bytes a connection's peer has acknowledged, read from the kernel by
sock_diag for a peer named as ``context.peer()`` names it, on real loopback TCP connections. The reference is the
kernel's other door to the same count: ``getsockopt(TCP_INFO)`` on the accepted socket itself (which grpcio does
not give the worker). Every way it cannot tell answers None and is logged once.
"""

from __future__ import annotations

import logging
import socket
import struct
import time

import pytest

from tokend.server import acked_bytes as acked_bytes_module
from tokend.server.acked_bytes import AckedBytes

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_NETLINK"), reason="sock_diag is Linux's")


def _own_count(sock: socket.socket) -> int:
    """tcpi_bytes_acked by getsockopt on the sending socket: what sock_diag must answer."""
    return struct.unpack_from("=Q", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 120)[0]


def _connection(listen_on: str, connect_to: str, family: int = socket.AF_INET):
    """(listener, client, accepted, the client's peer string as grpcio writes it), small buffers both ways."""
    listener = socket.create_server((listen_on, 0), family=family)
    client = socket.socket(family)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 10)  # it fills soon when not read
    client.connect((connect_to, listener.getsockname()[1]))
    accepted, _ = listener.accept()
    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 << 10)
    accepted.setblocking(False)
    host, port = client.getsockname()[:2]
    peer = f"ipv4:{host}:{port}" if family == socket.AF_INET else f"ipv6:[{host}]:{port}"
    return listener, client, accepted, peer


def _send_until_full(sock: socket.socket) -> int:
    sent = 0
    while True:
        try:
            sent += sock.send(b"x" * 65536)
        except BlockingIOError:
            return sent


def _settled(read, seconds: float = 2.0) -> int:
    """A reading once two in a row 0.1 s apart agree (the kernel's in-flight segments acknowledged)."""
    previous, deadline = read(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = read()
        if current == previous:
            return current
        previous = current
    return previous


@pytest.mark.parametrize(
    "host, listen_on, connect_to, family",
    [
        ("127.0.0.1", "127.0.0.1", "127.0.0.1", socket.AF_INET),
        ("0.0.0.0", "0.0.0.0", "127.0.0.1", socket.AF_INET),  # a wildcard: the local address routed to the peer
        ("localhost", "127.0.0.1", "127.0.0.1", socket.AF_INET),
        ("::1", "::1", "::1", socket.AF_INET6),
    ],
)
def test_the_bytes_acknowledged_grow_when_the_peer_reads_and_not_when_it_does_not(host, listen_on, connect_to, family):
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6")
    listener, client, accepted, peer = _connection(listen_on, connect_to, family)
    with listener, client, accepted:
        acked = AckedBytes(host, listener.getsockname()[1])
        assert acked.of(peer) == _own_count(accepted) == 0  # nothing sent yet
        sent = _send_until_full(accepted)  # the peer reads nothing: its window closes
        stalled = _settled(lambda: acked.of(peer))
        assert 0 < stalled < sent  # what filled its receive buffer, not what waits in ours
        time.sleep(0.3)
        assert acked.of(peer) == stalled == _own_count(accepted)  # not reading: no growth
        received = 0
        while received < sent:  # the peer reads everything
            received += len(client.recv(1 << 20))
        assert _settled(lambda: acked.of(peer)) == sent == _own_count(accepted)


def test_another_connection_of_the_same_peer_address_is_not_counted():
    listener, client, accepted, peer = _connection("127.0.0.1", "127.0.0.1")
    with listener, client, accepted:
        other = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))
        other_accepted, _ = listener.accept()
        with other, other_accepted:
            other_accepted.sendall(b"y" * 1000)
            acked = AckedBytes("127.0.0.1", listener.getsockname()[1])
            assert _settled(lambda: acked.of(f"ipv4:127.0.0.1:{other.getsockname()[1]}")) == 1000
            assert acked.of(peer) == 0


def test_whatever_it_cannot_read_answers_none_logged_once(caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="tokend.server.acked_bytes")
    listener, client, accepted, peer = _connection("127.0.0.1", "127.0.0.1")
    client_port = client.getsockname()[1]
    with listener, client, accepted:
        port = listener.getsockname()[1]
        acked = AckedBytes("127.0.0.1", port)
        assert acked.of("unix:/tmp/tokend.sock") is None  # not TCP
        assert AckedBytes("127.0.0.1").of(peer) is None  # the listening port not known yet
        assert acked.of("ipv4:127.0.0.1:1") is None  # no such connection: the listener answers the lookup
        assert acked.of("ipv4:not-an-address:1") is None
        assert AckedBytes("127.0.0.2", port).of(peer) is None  # another local address than the connection's
        monkeypatch.setattr(acked_bytes_module, "_query", lambda *args: 1 / 0)  # a failure of the query itself
        assert acked.of(peer) is None
        monkeypatch.undo()
        assert acked.of(peer) == 0  # and it reads again once it can
    assert acked.of(f"ipv4:127.0.0.1:{client_port}") is None  # closed
    logged = [record.fields for record in caplog.records if record.getMessage() == "acked_bytes_unavailable"]
    assert len(logged) == 3, logged  # once per AckedBytes (three here), with the first reason
    assert "not a TCP peer" in logged[0]["reason"] and "port not known" in logged[1]["reason"], logged
    assert "socket not found" in logged[2]["reason"], logged


def test_without_netlink_it_answers_none(monkeypatch):
    monkeypatch.delattr(socket, "AF_NETLINK")
    assert AckedBytes("127.0.0.1", 50051).of("ipv4:127.0.0.1:54321") is None
