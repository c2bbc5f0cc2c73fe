"""Builds a worker's ``grpc.Server``: options, port binding, TLS, interceptors, services.

Options and why:
- ``grpc.so_reuseport`` — every worker binds the same port; the kernel spreads connections.
- max receive/send message length — ``max_message_bytes``; gRPC answers RESOURCE_EXHAUSTED stating it.
- keepalive enforcement — clients may ping every 10 s even without calls (tokend_client pings less
  often); more frequent pings are answered with GOAWAY ("too_many_pings") as gRPC does by default.
- ``grpc.max_connection_age_ms`` (+ grace) — clients reconnect periodically and re-resolve, so new
  pods receive traffic; in-flight calls get the grace period (``grace_period``) to finish.
- ``grpc.max_allowed_incoming_connections`` — ``max_connections``: gRPC closes a connection past it as it is
  accepted, so a client that opens connections without end (17 KiB each at rest; 5,000 idle ones took a
  worker from 247 to 333 MiB) neither grows the worker nor takes the file descriptors its registry and
  metrics files need (with none left, new clients and health checks timed out); the worker's file limit is
  raised to fit it at start, or the cap lowered to fit the limit (file_limit.py). gRPC counts per listener,
  and makes one per address the host resolves to (``localhost``: 127.0.0.1 and ::1, twice the cap in all);
  ``0.0.0.0`` and ``::`` are one (``listener_count``: the file limit is fitted to them all).

Not handled: ALTS, compression settings (clients choose; gRPC decompresses transparently).

The Tokenizer's handlers are the generated ones, but Encode's response serializer is
``encode_answer.serialize_encode_response`` (the servicer returns an ``EncodeAnswer``), which writes a large
answer on the worker's bulk lane (``add_services(..., lane=)``), and the request deserializers of Decode,
Encode and CountTokens are ``decode_request.read_decode_request`` and ``text_request.read_encode_request`` /
``read_count_request`` (a large request's ids or texts read without the GIL).

    server = build_server(settings, interceptors=[...])
    add_services(server, tokenizer=servicer, health=health, reflection=True)
    port = bind(server, settings)
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tokend_api.v1 import tokenizer_pb2, tokenizer_pb2_grpc
from tokend.server.decode_request import read_decode_request
from tokend.server.chunk_answer import serialize_chunk_response
from tokend.server.encode_answer import serialize_encode_response
from tokend.registry.chat.render_turns import MAX_RENDER_CALLS
from tokend.server.text_request import read_count_request, read_encode_request
from tokend.service.bulk_lane import BulkLane
from tokend.settings import Settings

__all__ = [
    "build_server", "add_services", "bind", "listener_count", "server_options", "STREAM_THREADS", "THREADS_PER_WORKER",
]

# One worker process serves calls on a few threads: the GIL makes more threads useless for CPU work, but a
# handful lets health checks and short calls pass a long batch. Two kinds of call may hold a thread long:
# open streams (at most STREAM_THREADS: stream_slots.py) and calls rendering chat templates, which wait for
# their turn holding their thread (at most MAX_RENDER_CALLS, registry/chat/render_turns.py); the rest of the
# threads are never theirs. With 8 threads and no cap on renders, 8 spinning templates held every thread, and
# a CountTokens queued for one (p50 1.8 s beside 16 clients sending spinning calls). Idle threads cost
# nothing, and those waiting for a render turn block without the GIL.
STREAM_THREADS = 4
UNARY_THREADS = 4
THREADS_PER_WORKER = MAX_RENDER_CALLS + STREAM_THREADS + UNARY_THREADS
KEEPALIVE_MIN_PING_INTERVAL_MS = 10_000


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_MIN_PING_INTERVAL_MS),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_MIN_PING_INTERVAL_MS),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.max_allowed_incoming_connections", settings.max_connections),
    ]
    if settings.max_connection_age > 0:
        options.append(("grpc.max_connection_age_ms", int(settings.max_connection_age * 1000)))
        options.append(("grpc.max_connection_age_grace_ms", int(max(settings.grace_period, 1) * 1000)))
    return options


def build_server(settings: Settings, *, interceptors: Sequence[grpc.ServerInterceptor]) -> grpc.Server:
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=THREADS_PER_WORKER, thread_name_prefix="tokend-rpc"),
        interceptors=list(interceptors),
        options=server_options(settings),
    )


def add_services(
    server: grpc.Server, *, tokenizer: Any, health: Any, reflection_enabled: bool, lane: BulkLane | None = None
) -> None:
    """The Tokenizer (Encode's large answers written on ``lane``), health and, if enabled, reflection."""
    _add_tokenizer(tokenizer, server, lane)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    if reflection_enabled:
        names = (
            tokenizer_pb2.DESCRIPTOR.services_by_name["Tokenizer"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, server)


def bind(server: grpc.Server, settings: Settings) -> int:
    """Bind ``host:port`` (TLS if configured); returns the bound port, 0 if binding failed."""
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    address = f"{host}:{settings.port}"
    if not settings.tls:
        return server.add_insecure_port(address)
    # Settings guarantees cert and key come together.
    cert, key = settings.tls_cert.read_bytes(), settings.tls_key.read_bytes()  # type: ignore[union-attr]
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    credentials = grpc.ssl_server_credentials(
        [(key, cert)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return server.add_secure_port(address, credentials)


def listener_count(host: str) -> int:
    """How many listeners ``bind`` makes gRPC open for ``host``, each holding ``--max-connections``: one for an IP
    address, the wildcards (``0.0.0.0``, ``::``: one dual-stack socket) included; two for ``localhost``, whatever
    /etc/hosts says (gRPC's resolver, c-ares, answers ::1 and 127.0.0.1 for it: measured with only 127.0.0.1
    listed); else one per address the name resolves to. Counting one too many only lowers a cap fitted to the
    file limit (``localhost`` where IPv6 is off: one listener, counted two); one too few let a flood use up the
    worker's descriptors.

        >>> listener_count("0.0.0.0"), listener_count("[::1]"), listener_count("localhost")
        (1, 1, 2)
    """
    bare = host.strip("[]")
    if bare.lower() == "localhost":
        return 2
    try:
        ipaddress.ip_address(bare)
        return 1
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(bare, None, type=socket.SOCK_STREAM)}
    except OSError:  # binding fails too, and says so (bind_failed)
        return 1
    return max(1, len(addresses))


class _HandlerCapture:
    """Stands in for the server while the generated code registers the Tokenizer's method handlers."""

    service = ""
    handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        self.service, self.handlers = service, dict(handlers)


def _add_tokenizer(tokenizer: Any, server: grpc.Server, lane: BulkLane | None) -> None:
    """The generated registration, but Encode's answers are serialized by ``serialize_encode_response``
    (the servicer returns an ``EncodeAnswer`` whose bytes are written without the GIL), Chunk's by
    ``serialize_chunk_response`` (a ``ChunkAnswer``, written a group of chunks at a time), and Decode's, Encode's
    and CountTokens' requests are read by ``read_decode_request``, ``read_encode_request`` and
    ``read_count_request`` (a large one's ids or texts without the GIL)."""
    capture = _HandlerCapture()
    tokenizer_pb2_grpc.add_TokenizerServicer_to_server(tokenizer, capture)
    if not capture.handlers:
        raise RuntimeError("tokenizer_pb2_grpc registered no method handlers: regenerate it with grpcio-tools >= 1.63")
    replaced = {
        "Encode": (read_encode_request, functools.partial(serialize_encode_response, lane=lane)),
        "Decode": (read_decode_request, None),
        "CountTokens": (read_count_request, None),
        "Chunk": (None, serialize_chunk_response),
    }
    for method, (deserializer, serializer) in replaced.items():
        handler = capture.handlers[method]
        capture.handlers[method] = grpc.unary_unary_rpc_method_handler(
            handler.unary_unary, request_deserializer=deserializer or handler.request_deserializer,
            response_serializer=serializer or handler.response_serializer,
        )  # fmt: skip
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(capture.service, capture.handlers),))
    server.add_registered_method_handlers(capture.service, capture.handlers)
