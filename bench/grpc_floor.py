"""The floor under tokend's per-call cost: a bare grpcio server that answers CountTokens with the same engine
and nothing else (no interceptors, no service layer, no metrics, no worker-id metadata, no limits).

    python -m bench.grpc_floor --port 50051 [--aio] [--threads 8]   # one process; start several (SO_REUSEPORT)

`python -m bench service latency` measures it beside `tokend serve` at the same offered rates, so the table
shows how much of tokend's CPU per call is grpcio's own. ``--aio`` serves with ``grpc.aio`` instead of the
thread-pool server, the alternative weighed in docs/decisions.md. Not a server for anything else: it
ignores the request's model and policy (cl100k_base, ordinary text).
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent import futures

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc_floor")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--aio", action="store_true", help="grpc.aio server (default: the thread-pool server)")
    parser.add_argument("--threads", type=int, default=8, help="thread-pool size (tokend's THREADS_PER_WORKER)")
    args = parser.parse_args(argv)

    import grpc
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    from tokend import get_encoding

    encoding = get_encoding("cl100k_base")
    model = pb.ModelVersion(name="cl100k_base", version=1)

    def answer(request: pb.CountTokensRequest) -> pb.CountTokensResponse:
        counts = [encoding.count(item.text, disallowed_special=()) for item in request.inputs]
        return pb.CountTokensResponse(model=model, counts=counts, total=sum(counts))

    class Servicer(tokenizer_pb2_grpc.TokenizerServicer):
        def CountTokens(self, request, context):  # noqa: N802 - the proto's name
            return answer(request)

    class AioServicer(tokenizer_pb2_grpc.TokenizerServicer):
        async def CountTokens(self, request, context):  # noqa: N802
            return answer(request)

    options = [("grpc.so_reuseport", 1)]
    address = f"127.0.0.1:{args.port}"
    if not args.aio:
        server = grpc.server(futures.ThreadPoolExecutor(args.threads), options=options)
        tokenizer_pb2_grpc.add_TokenizerServicer_to_server(Servicer(), server)
        server.add_insecure_port(address)
        server.start()
        print("serving", flush=True)
        server.wait_for_termination()
        return 0

    async def serve() -> None:
        server = grpc.aio.server(options=options)
        tokenizer_pb2_grpc.add_TokenizerServicer_to_server(AioServicer(), server)
        server.add_insecure_port(address)
        await server.start()
        print("serving", flush=True)
        await server.wait_for_termination()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
