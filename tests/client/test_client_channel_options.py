"""The channel options and service config every client channel gets, checked against the server's side."""

from __future__ import annotations

import json

import pytest

from tokend.server import grpc_server
from tokend_client._channel_pool import KEEPALIVE_TIME_MS, channel_options, service_config
from tokend_client._client_settings import ClientSettings


def test_keepalive_is_no_more_frequent_than_the_server_permits():
    # A client pinging more often than the server's minimum gets GOAWAY "too_many_pings".
    assert KEEPALIVE_TIME_MS >= grpc_server.KEEPALIVE_MIN_PING_INTERVAL_MS
    options = dict(channel_options(retries=4, max_message_bytes=1 << 20))
    assert options["grpc.keepalive_time_ms"] == KEEPALIVE_TIME_MS
    assert options["grpc.keepalive_permit_without_calls"] == 0


def test_round_robin_and_retries_on_unavailable():
    config = json.loads(service_config(3))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "tokend.v1.Tokenizer"}]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert "retryPolicy" not in json.loads(service_config(0))["methodConfig"][0]


def test_every_channel_gets_its_own_connections_and_the_message_limits():
    options = dict(channel_options(retries=1, max_message_bytes=16 << 20))
    assert options["grpc.use_local_subchannel_pool"] == 1
    assert options["grpc.max_receive_message_length"] == options["grpc.max_send_message_length"] == 16 << 20
    assert json.loads(options["grpc.service_config"]) == json.loads(service_config(1))


def test_caller_options_replace_ours():
    extra = [("grpc.keepalive_time_ms", 120_000), ("grpc.primary_user_agent", "x")]
    settings = ClientSettings.build("127.0.0.1:1", options=extra)
    keys = [key for key, _ in settings.options]
    assert keys.count("grpc.keepalive_time_ms") == 1
    assert dict(settings.options)["grpc.keepalive_time_ms"] == 120_000
    assert dict(settings.options)["grpc.primary_user_agent"] == "x"


@pytest.mark.parametrize("retries", [-1, 5])
def test_retries_outside_what_grpc_allows_are_refused(retries):
    with pytest.raises(ValueError, match="retries must be between 0 and 4"):
        channel_options(retries=retries, max_message_bytes=1)
