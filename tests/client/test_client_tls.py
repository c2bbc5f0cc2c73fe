"""`tls=`: the client verifies the server against a CA and presents its own certificate (mutual TLS)."""

from __future__ import annotations

import grpc
import pytest
from client_certificates import make_certificates
from support.server import TokendServer

import tokend_client


@pytest.fixture(scope="module")
def mutual_tls_server(tmp_path_factory):
    paths = make_certificates(tmp_path_factory.mktemp("certificates"))
    read = {name: path.read_bytes() for name, path in paths.items()}
    client_credentials = grpc.ssl_channel_credentials(
        root_certificates=read["ca"], private_key=read["client_key"], certificate_chain=read["client_cert"]
    )
    server = TokendServer(
        "--tls-cert", str(paths["server_cert"]), "--tls-key", str(paths["server_key"]),
        "--tls-client-ca", str(paths["ca"]),
        models=["cl100k_base"], metrics=False, channel_credentials=client_credentials,
    ).start()  # fmt: skip
    try:
        yield server, read, client_credentials
    finally:
        server.stop()


def test_mutual_tls_round_trip(mutual_tls_server):
    server, _, credentials = mutual_tls_server
    with tokend_client.TokendClient(server.target, tls=credentials, connections=2) as client:
        enc = client.get_encoding("cl100k_base")
        assert enc.encode("hello world") == [15339, 1917]


def test_without_a_client_certificate_the_server_refuses(mutual_tls_server):
    server, read, _ = mutual_tls_server
    server_only = grpc.ssl_channel_credentials(root_certificates=read["ca"])
    with tokend_client.TokendClient(server.target, tls=server_only, retries=1, timeout=10, connections=1) as client:
        with pytest.raises(tokend_client.ServiceUnavailableError):
            client.list_models()


def test_plaintext_to_a_tls_server_fails_cleanly(mutual_tls_server):
    server, _, _ = mutual_tls_server
    with tokend_client.TokendClient(server.target, retries=0, timeout=10, connections=1) as client:
        with pytest.raises(tokend_client.ServiceUnavailableError):
            client.list_models()


def test_tls_argument_is_validated():
    with pytest.raises(TypeError, match="tls must be False, True or grpc.ChannelCredentials"):
        tokend_client.TokendClient("127.0.0.1:1", tls="yes")
