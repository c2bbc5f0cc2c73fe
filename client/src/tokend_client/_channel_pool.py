"""The client's connections: channel options, the gRPC service config, and a small pool of channels.

Why a pool: `tokend serve` runs N worker processes on one SO_REUSEPORT port, and the kernel spreads
*connections* over them, not calls. One channel is one HTTP/2 connection per server address, so all its
calls land on one worker. The pool opens `connections` channels that do not share subchannels
(`grpc.use_local_subchannel_pool`), i.e. separate TCP connections, and hands out their stubs in turn.
The kernel picks a worker per connection at random (measured here: 4 connections reached both workers of
a 2-worker server for 28 of 30 clients, against 7/8 expected), so with k connections and w workers a
given worker gets no connection with probability (1 - 1/w)**k: 1/256 for the default 8 connections and
2 workers, 10% for 4 workers. The server's max-connection-age (300 s by default) makes clients
reconnect, which re-rolls the dice over time. Connections are cheap (one TCP + HTTP/2 connection per
channel and server address), so 8 is the default.

The service config gives every channel:
- `round_robin` over all addresses a target resolves to (a `dns:///` name of a Kubernetes headless
  Service, or an `ipv4:a:p,b:p` list), so calls go to every replica, and dead ones are skipped;
- retries with exponential backoff on UNAVAILABLE (server starting, draining, or gone). Every tokend RPC
  is a pure function of its request, so retrying is always safe. gRPC caps attempts at 5.

Keepalive: a ping after 60 s without activity on a connection with calls in flight, none on idle
connections. tokend's server permits pings every 10 s or more (its
`grpc.http2.min_recv_ping_interval_without_data_ms`); pinging more often than a server permits makes it
close the connection with GOAWAY "too_many_pings", so never go below the server's minimum.

UNAVAILABLE after a server had started answering (it died or began draining mid-call) is not retried
by gRPC (the call is committed once response headers arrive, and tokend sends `tokend-worker` first);
the clients resend such calls themselves, up to `retries` times (`_error_mapping.lost_its_server`).

Not handled: per-call load reporting (ORCA), xDS; connections are not rebalanced when they happen to
land on one worker.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import grpc
from tokend_api import SERVICE_NAME
from tokend_api.v1 import tokenizer_pb2_grpc

KEEPALIVE_TIME_MS = 60_000
KEEPALIVE_TIMEOUT_MS = 20_000
MAX_GRPC_ATTEMPTS = 5  # gRPC silently lowers maxAttempts above 5 to 5

_COMPRESSION = {
    None: grpc.Compression.NoCompression,
    "none": grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


def service_config(retries: int) -> str:
    """The JSON service config: round_robin, and `retries` retries with backoff on UNAVAILABLE.

        json.loads(service_config(3))["methodConfig"][0]["retryPolicy"]["maxAttempts"]  # 4
    """
    method_config: dict[str, Any] = {"name": [{"service": SERVICE_NAME}]}
    if retries > 0:
        method_config["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [method_config]})


def channel_options(*, retries: int, max_message_bytes: int) -> list[tuple[str, Any]]:
    """The options every channel of the pool is created with."""
    if not 0 <= retries < MAX_GRPC_ATTEMPTS:
        raise ValueError(
            f"retries must be between 0 and {MAX_GRPC_ATTEMPTS - 1} (gRPC allows at most {MAX_GRPC_ATTEMPTS} "
            f"attempts per call), got {retries}"
        )
    if max_message_bytes < 1:
        raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
    return [
        ("grpc.service_config", service_config(retries)),
        # Our config, not one a DNS TXT record might carry.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.enable_retries", 1 if retries > 0 else 0),
        # Separate TCP connections per channel (see the module docstring).
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def compression_of(compression: str | grpc.Compression | None) -> grpc.Compression:
    """`None` / "gzip" / "deflate" / a `grpc.Compression` → `grpc.Compression`."""
    if isinstance(compression, grpc.Compression):
        return compression
    try:
        return _COMPRESSION[compression.lower() if isinstance(compression, str) else compression]
    except KeyError:
        raise ValueError(f"compression must be None, 'gzip' or 'deflate', got {compression!r}") from None


def credentials_of(tls: bool | grpc.ChannelCredentials) -> grpc.ChannelCredentials | None:
    """`False` → plaintext; `True` → TLS with the system's roots; credentials → used as given (mutual TLS)."""
    if tls is False or tls is None:
        return None
    if tls is True:
        return grpc.ssl_channel_credentials()
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    raise TypeError(
        f"tls must be False, True or grpc.ChannelCredentials (e.g. grpc.ssl_channel_credentials(root, key, chain)), "
        f"got {tls!r}"
    )


Channel = TypeVar("Channel")


class ChannelPool(Generic[Channel]):
    """`size` channels to one target and their stubs, handed out in turn (thread-safe).

        pool = ChannelPool(lambda: grpc.insecure_channel(target, options), size=4)
        stub = pool.stub()            # the next channel's TokenizerStub
        pool.close()
    """

    def __init__(self, make_channel: Callable[[], Channel], *, size: int) -> None:
        if size < 1:
            raise ValueError(f"connections must be at least 1, got {size}")
        self.channels: Sequence[Channel] = [make_channel() for _ in range(size)]
        self._stubs = [tokenizer_pb2_grpc.TokenizerStub(channel) for channel in self.channels]
        self._turn = itertools.count()  # next() on a count is atomic under the GIL

    def stub(self) -> tokenizer_pb2_grpc.TokenizerStub:
        return self._stubs[next(self._turn) % len(self._stubs)]
