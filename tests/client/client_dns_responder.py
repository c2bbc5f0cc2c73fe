"""A tiny authoritative DNS server on a loopback UDP port, so `dns:///` targets can be tested honestly.

gRPC's c-ares resolver accepts an explicit DNS server in the target's authority:
`dns://127.0.0.1:5353/tokend.test:50051` asks 127.0.0.1:5353 for `tokend.test`. This responder answers
A and AAAA questions from a fixed table (like a Kubernetes headless Service that lists every pod) and
NXDOMAIN for other names. It speaks just enough of RFC 1035 for that: one question per query, answers
with a compression pointer to the question name, TTL 5 s, no TCP, no EDNS.

    with DnsResponder({"tokend.test": ["127.0.0.1", "127.0.0.2"]}) as dns:
        target = f"dns://127.0.0.1:{dns.port}/tokend.test:{port}"
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Mapping, Sequence

_TYPE_A, _TYPE_AAAA = 1, 28


class DnsResponder:
    """Answers `name → addresses` (IPv4 and IPv6 literals) on 127.0.0.1:`port` from a daemon thread."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = {name.lower().rstrip("."): list(addresses) for name, addresses in table.items()}
        self.queries: list[tuple[str, int]] = []  # (name, qtype) in arrival order
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        # Closing a socket does not wake a thread blocked in recvfrom; poll a stop flag instead.
        self._socket.settimeout(0.1)
        self._stopping = threading.Event()
        self.port = self._socket.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="dns-responder", daemon=True)

    def __enter__(self) -> DnsResponder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                query, peer = self._socket.recvfrom(512)
                self._socket.sendto(self._answer(query), peer)
            except TimeoutError:
                continue
            except OSError:
                return
            except (IndexError, struct.error, UnicodeDecodeError):
                continue  # not a query we understand: drop it, as a real server may

    def _answer(self, query: bytes) -> bytes:
        query_id = struct.unpack(">H", query[:2])[0]
        position, labels = 12, []
        while query[position]:
            length = query[position]
            labels.append(query[position + 1 : position + 1 + length].decode("ascii"))
            position += 1 + length
        qtype = struct.unpack(">H", query[position + 1 : position + 3])[0]
        question = query[12 : position + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        family = {_TYPE_A: socket.AF_INET, _TYPE_AAAA: socket.AF_INET6}.get(qtype)
        records = b""
        count = 0
        for address in self.table.get(name, []):
            is_v6 = ":" in address
            if family is None or is_v6 != (family == socket.AF_INET6):
                continue
            data = socket.inet_pton(family, address)
            # name = pointer to offset 12 (the question), class IN, TTL 5 s
            records += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 5, len(data)) + data
            count += 1
        rcode = 0 if name in self.table else 3  # NOERROR / NXDOMAIN
        flags = 0x8400 | 0x0100 | 0x0080 | rcode  # response, authoritative, recursion desired + available
        return struct.pack(">HHHHHH", query_id, flags, 1, count, 0, 0) + question + records
