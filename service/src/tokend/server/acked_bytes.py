"""How many bytes a gRPC connection's peer has acknowledged: the kernel's count for the connection's TCP socket
(``tcpi_bytes_acked`` of ``struct tcp_info``), read with one NETLINK_SOCK_DIAG query for its exact 4-tuple.

Why: grpcio tells when an answer has been sent, nothing of how far along it is, and a connection sends its
answers side by side; the kernel knows whether the peer reads (what it acknowledges grows) even while no answer
has finished. ``SendDeadlines`` asks only at a call's deadline, so the cost (0.15-0.3 ms a query) is not on
the request path. The socket is found from ``context.peer()`` ("ipv4:127.0.0.1:54321", "ipv6:[::1]:54321") and the
worker's listening port; the local address is the listening host when it is an IP address, else the one the
kernel routes from towards the peer (what a client connecting to a wildcard listener reached, unless routing is
asymmetric: then no socket is found). No privileges are needed for the worker's own sockets.

Not handled: unix sockets, platforms without AF_NETLINK, a socket not found (closed, or a local address the
route does not give): ``of`` answers None, and the caller keeps its behaviour without it; the first such answer
is logged (``acked_bytes_unavailable``), the later ones are not.

    acked = AckedBytes("0.0.0.0")
    acked.port = 50051  # once the worker has bound it
    acked.of("ipv4:127.0.0.1:54321")  # 1048576, or None: cannot tell
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct

from tokend.logs import log_event

__all__ = ["AckedBytes"]

_log = logging.getLogger("tokend.server.acked_bytes")

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_INET_DIAG_INFO = 2  # the attribute carrying struct tcp_info
_TCP_LISTEN = 10  # an exact lookup that misses the connection answers its listener instead
_BYTES_ACKED_OFFSET = 120  # tcpi_bytes_acked (u64) in struct tcp_info, Linux >= 4.2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI")  # inet_diag_req_v2 before its id: family, protocol, ext, pad, states
_MESSAGE_BEFORE_ATTRIBUTES = 72  # inet_diag_msg: 4 bytes, its 48-byte id, expires/rqueue/wqueue/uid/inode
_WILDCARDS = {"", "0.0.0.0", "::", "[::]", "*"}


class AckedBytes:
    """``of(peer)``: the bytes the peer of this worker's connection has acknowledged, or None when it cannot tell
    (logged once). ``port``: the worker's listening port (0 until bound: None). Not thread-safe about the log-once
    flag only (a second log line at worst)."""

    def __init__(self, host: str, port: int = 0) -> None:
        bare = host.strip("[]")
        try:
            self._host: ipaddress.IPv4Address | ipaddress.IPv6Address | None = (
                None if bare in _WILDCARDS else ipaddress.ip_address(bare)
            )
        except ValueError:  # a name (localhost): the routed address stands for it
            self._host = None
        self.port = port
        self._logged = False

    def of(self, peer: str) -> int | None:
        try:
            acked, reason = self._read(peer)
        except Exception as exc:  # any failure of the reading: the caller does without it
            acked, reason = None, f"{type(exc).__name__}: {exc}"
        if acked is None and not self._logged:
            self._logged = True
            log_event(_log, "acked_bytes_unavailable", level=logging.WARNING, peer=peer[:200], reason=reason,
                      consequence="a connection reads only once one of its answers ended")  # fmt: skip
        return acked

    def _read(self, peer: str) -> tuple[int | None, str]:
        if not hasattr(socket, "AF_NETLINK"):
            return None, "no AF_NETLINK on this platform"
        if not self.port:
            return None, "listening port not known"
        kind, _, address = peer.partition(":")
        if kind not in ("ipv4", "ipv6"):
            return None, f"not a TCP peer ({kind})"
        host, _, port_text = address.rpartition(":")
        remote = ipaddress.ip_address(host.strip("[]").partition("%")[0])
        remote_port = int(port_text)
        family = socket.AF_INET if remote.version == 4 else socket.AF_INET6
        local = self._host if self._host is not None and self._host.version == remote.version else None
        if local is None:
            with socket.socket(family, socket.SOCK_DGRAM) as probe:  # connect() on UDP sends nothing
                probe.connect((str(remote), remote_port or 9))
                local = ipaddress.ip_address(probe.getsockname()[0])
        return _query(family, local.packed, self.port, remote.packed, remote_port)


def _query(family: int, local: bytes, local_port: int, remote: bytes, remote_port: int) -> tuple[int | None, str]:
    socket_id = (struct.pack("!HH", local_port, remote_port) + local.ljust(16, b"\0") + remote.ljust(16, b"\0")
                 + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF))  # interface: any; cookie: none  # fmt: skip
    request = _REQUEST.pack(family, socket.IPPROTO_TCP, 1 << (_INET_DIAG_INFO - 1), 0, 0xFFFFFFFF) + socket_id
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC, _NETLINK_SOCK_DIAG) as diag:
        diag.settimeout(1.0)
        diag.send(_HEADER.pack(_HEADER.size + len(request), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + request)
        answer = diag.recv(65536)
    length, kind = _HEADER.unpack_from(answer)[:2]
    if kind == _NLMSG_ERROR:
        (error,) = struct.unpack_from("=i", answer, _HEADER.size)
        return None, f"socket not found (errno {-error})"
    start = _HEADER.size
    if kind != _SOCK_DIAG_BY_FAMILY or length < start + _MESSAGE_BEFORE_ATTRIBUTES:
        return None, f"unexpected answer (type {kind}, {length} bytes)"
    state = answer[start + 1]
    (answered_remote_port,) = struct.unpack_from("!H", answer, start + 6)
    if state == _TCP_LISTEN or answered_remote_port != remote_port:
        return None, "socket not found (the listener answered: another local address?)"
    offset = start + _MESSAGE_BEFORE_ATTRIBUTES
    while offset + 4 <= length:
        size, attribute = struct.unpack_from("=HH", answer, offset)
        if size < 4:
            break
        if attribute == _INET_DIAG_INFO and size - 4 >= _BYTES_ACKED_OFFSET + 8:
            (acked,) = struct.unpack_from("=Q", answer, offset + 4 + _BYTES_ACKED_OFFSET)
            return acked, ""
        offset += (size + 3) & ~3
    return None, "no tcp_info with tcpi_bytes_acked (kernel older than 4.2?)"
