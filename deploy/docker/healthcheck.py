#!/opt/tokend/bin/python
"""Docker HEALTHCHECK for the tokend image: exit 0 when the local server reports SERVING.

Asks the standard gRPC health service (grpc.health.v1, overall status "") of the server in this
container, on 127.0.0.1 and the port from TOKEND_PORT (default 50051). Kubernetes does not use this
script: its native gRPC probes ask the same service (deploy/k8s/base/deployment.yaml).

Not handled: a server with TLS turned on (TOKEND_TLS_CERT). Its certificate names a host, not
127.0.0.1, and mutual TLS would need a client certificate, so under TLS the check only verifies that the
port accepts TCP connections.

    $ TOKEND_PORT=50051 tokend-healthcheck; echo $?
    0
"""

from __future__ import annotations

import os
import socket
import sys

_TIMEOUT_SECONDS = 4.0


def main() -> int:
    port = int(os.environ.get("TOKEND_PORT") or "50051")
    target = f"127.0.0.1:{port}"
    if os.environ.get("TOKEND_TLS_CERT"):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=_TIMEOUT_SECONDS).close()
        except OSError as exc:
            sys.stderr.write(f"tokend-healthcheck: {target} does not accept connections: {exc}\n")
            return 1
        return 0

    # Imported here so that the TLS branch above costs no grpc import.
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=_TIMEOUT_SECONDS
            )
        except grpc.RpcError as exc:
            sys.stderr.write(f"tokend-healthcheck: {target}: {exc.code().name}: {exc.details()}\n")
            return 1
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        sys.stderr.write(f"tokend-healthcheck: {target} reports {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
