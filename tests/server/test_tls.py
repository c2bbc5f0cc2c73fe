"""TLS and mutual TLS: a client that trusts the CA gets answers; one that does not, or (mutual TLS)
one without a client certificate, is refused."""

from __future__ import annotations

import grpc
import pytest

from support.server import start_server
from support.tls import make_tls_files
from tokend_api.v1 import tokenizer_pb2 as pb
from tokend_api.v1 import tokenizer_pb2_grpc

REQUEST = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")])


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _count(target: str, credentials: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(target, credentials) as channel:
        return tokenizer_pb2_grpc.TokenizerStub(channel).CountTokens(REQUEST, timeout=10).total


def test_tls(registry_dir, tls_files, tmp_path):
    other_ca = make_tls_files(tmp_path / "other")  # a client trusting another CA must refuse the server
    trusted = grpc.ssl_channel_credentials(root_certificates=tls_files.ca.read_bytes())
    flags = ("--tls-cert", str(tls_files.server_cert), "--tls-key", str(tls_files.server_key))
    with start_server(*flags, registry=registry_dir, models=["cl100k_base"], metrics=False, channel_credentials=trusted) as server:
        assert _count(server.target, trusted) == 2
        with grpc.insecure_channel(server.target) as plain:  # plaintext to a TLS port fails
            with pytest.raises(grpc.RpcError) as info:
                tokenizer_pb2_grpc.TokenizerStub(plain).CountTokens(REQUEST, timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        untrusting = grpc.ssl_channel_credentials(root_certificates=other_ca.ca.read_bytes())
        with pytest.raises(grpc.RpcError) as info:
            _count(server.target, untrusting)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(registry_dir, tls_files):
    with_client_cert = grpc.ssl_channel_credentials(
        root_certificates=tls_files.ca.read_bytes(),
        private_key=tls_files.client_key.read_bytes(),
        certificate_chain=tls_files.client_cert.read_bytes(),
    )
    flags = (
        "--tls-cert", str(tls_files.server_cert), "--tls-key", str(tls_files.server_key),
        "--tls-client-ca", str(tls_files.ca),
    )  # fmt: skip
    with start_server(
        *flags, registry=registry_dir, models=["cl100k_base"], metrics=False, channel_credentials=with_client_cert
    ) as server:
        assert _count(server.target, with_client_cert) == 2
        without_client_cert = grpc.ssl_channel_credentials(root_certificates=tls_files.ca.read_bytes())
        with pytest.raises(grpc.RpcError) as info:
            _count(server.target, without_client_cert)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
