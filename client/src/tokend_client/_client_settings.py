"""The settings both clients take, validated once, with errors that name the argument.

    settings = ClientSettings.build("dns:///tokend.default.svc:50051", timeout=5.0, connections=4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

import grpc
from tokend_api import DEFAULT_MAX_BATCH_ITEMS, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_REQUEST_BYTES

from ._batching import RequestLimits
from ._channel_pool import channel_options, compression_of, credentials_of

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 4
DEFAULT_CONNECTIONS = 8
# Requests in flight per connection for one batched call: enough to keep a worker's thread pool busy
# while responses travel, few enough not to queue a whole huge batch in memory at once.
IN_FLIGHT_PER_CONNECTION = 4


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of `TokendClient` and `AsyncTokendClient` (defaults: `ClientSettings.build`)."""

    timeout: float
    tls: bool | grpc.ChannelCredentials
    compression: str | grpc.Compression | None
    retries: int
    connections: int
    max_batch_items: int
    max_request_bytes: int
    max_message_bytes: int
    options: Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class ClientSettings:
    target: str
    timeout: float
    credentials: grpc.ChannelCredentials | None
    compression: grpc.Compression
    connections: int
    retries: int
    options: Sequence[tuple[str, Any]]
    limits: RequestLimits
    max_in_flight: int

    @classmethod
    def build(
        cls,
        target: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tls: bool | grpc.ChannelCredentials = False,
        compression: str | grpc.Compression | None = None,
        retries: int = DEFAULT_RETRIES,
        connections: int = DEFAULT_CONNECTIONS,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        options: Sequence[tuple[str, Any]] = (),
    ) -> ClientSettings:
        if not isinstance(target, str) or not target:
            raise ValueError(
                f"target must be a gRPC target such as 'localhost:50051' or 'dns:///host:50051', got {target!r}"
            )
        if not timeout or timeout <= 0:
            raise ValueError(
                f"timeout must be a positive number of seconds (every call has a deadline), got {timeout!r}"
            )
        if not isinstance(connections, int) or connections < 1:
            raise ValueError(f"connections must be an integer >= 1, got {connections!r}")
        return cls(
            target=target,
            timeout=float(timeout),
            credentials=credentials_of(tls),
            compression=compression_of(compression),
            connections=connections,
            retries=retries,
            options=_merged(channel_options(retries=retries, max_message_bytes=max_message_bytes), options),
            limits=RequestLimits(max_items=max_batch_items, max_bytes=max_request_bytes),
            max_in_flight=IN_FLIGHT_PER_CONNECTION * connections,
        )


def _merged(defaults: Sequence[tuple[str, Any]], overrides: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Our channel options with the caller's `options=` replacing any of the same key."""
    replaced = {key for key, _ in overrides}
    return [option for option in defaults if option[0] not in replaced] + list(overrides)
