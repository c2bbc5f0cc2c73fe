"""In-process cost of the worker's unary interceptors per call: metrics, request log, errors and unsent answers
around a handler that answers at once, on a context that behaves as grpcio's (``add_callback`` takes a
Condition; the callbacks run when the call "ends", right after it, as the answer was sent).

    python -m bench chain-percall [--calls 100000] [--rounds 7] [--answer-bytes 20000]

By default the answer is a CountTokens' (under unsent_answers.FLOOR_BYTES: not watched); ``--answer-bytes``
makes it a Decode's of that size (16 KiB or more: it holds room and its end is watched). Prints the best and
median µs of this thread's CPU per call over the rounds, and the ``add_callback`` calls per call. Compare builds
side by side, alternating (``PYTHONPATH=<build>/service/src:<build>/api/src:.``). What it leaves out: grpcio's own
machinery (the polling thread, the thread pool), the servicer and the service layer
(bench/service_percall.py measures a real worker).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

import grpc
from prometheus_client import CollectorRegistry
from tokend_api.v1 import tokenizer_pb2 as pb

from tokend.server.error_interceptor import ErrorInterceptor
from tokend.server.interceptor_chain import InterceptorChain
from tokend.server.logging_interceptor import LoggingInterceptor
from tokend.server.metrics import ServerMetrics
from tokend.server.metrics_interceptor import MetricsInterceptor
from tokend.server.unsent_answers import SendDeadlines, UnsentAnswers
from tokend.service.admission import WorkAdmission
from tokend.service.call_record import current_record

METHOD = "/tokend.v1.Tokenizer/CountTokens"


class _Context:
    """What the interceptors use of grpcio's ServicerContext, with its locking."""

    __slots__ = ("_condition", "callbacks")
    added = 0  # add_callback calls, all contexts

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.callbacks: list[Any] | None = []

    def add_callback(self, callback: Any) -> bool:
        _Context.added += 1
        with self._condition:
            if self.callbacks is None:
                return False
            self.callbacks.append(callback)
            return True

    def end(self) -> None:
        with self._condition:
            callbacks, self.callbacks = self.callbacks, None
        for callback in callbacks or ():
            callback()

    def code(self) -> None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:50000"


class _Details:
    method = METHOD
    invocation_metadata = ()


def _count_tokens(request: Any, context: Any) -> pb.CountTokensResponse:
    record = current_record()
    record.model, record.operation, record.items, record.tokens, record.input_bytes = ("cl100k_base", 1), "count", 1, 250, 1000
    return pb.CountTokensResponse(total=250)


def _decode(answer_bytes: int) -> Any:
    answer = pb.DecodeResponse(results=[pb.DecodeResult(text="x" * answer_bytes)])

    def decode(request: Any, context: Any) -> pb.DecodeResponse:
        record = current_record()
        record.model, record.operation, record.items, record.tokens = ("cl100k_base", 1), "decode", 1, answer_bytes // 128
        return answer

    return decode


def composed_handler(answer_bytes: int = 0) -> Any:
    metrics = ServerMetrics(CollectorRegistry())
    deadlines = SendDeadlines(on_cancel=metrics.answers_cancelled.inc)
    chain = InterceptorChain([
        MetricsInterceptor(metrics), LoggingInterceptor(), ErrorInterceptor(),
        UnsentAnswers(WorkAdmission(256 << 20), send_seconds=10.0, deadlines=deadlines),
    ])  # fmt: skip
    inner = grpc.unary_unary_rpc_method_handler(
        _decode(answer_bytes) if answer_bytes else _count_tokens, request_deserializer=pb.CountTokensRequest.FromString,
        response_serializer=(pb.DecodeResponse if answer_bytes else pb.CountTokensResponse).SerializeToString,
    )  # fmt: skip
    return chain.intercept_service(lambda _details: inner, _Details()).unary_unary


def per_call_seconds(calls: int, answer_bytes: int = 0) -> float:
    handler = composed_handler(answer_bytes)
    request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hello")])
    started = time.thread_time()
    for _ in range(calls):
        context = _Context()  # grpcio makes a call state per call too
        handler(request, context)
        context.end()
    return (time.thread_time() - started) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chain-percall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--answer-bytes", type=int, default=0, help="a Decode's answer of this size (default: a CountTokens')")
    args = parser.parse_args(argv)
    per_call_seconds(2_000, args.answer_bytes)  # warm up: series and compositions made
    _Context.added = 0
    rounds = [per_call_seconds(args.calls, args.answer_bytes) * 1e6 for _ in range(args.rounds)]
    what = f"Decode answering {args.answer_bytes:,} bytes" if args.answer_bytes else "CountTokens"
    print(f"chain (metrics, log, errors, unsent answers) per {what}: best {min(rounds):.3f} µs, median "
          f"{statistics.median(rounds):.3f} µs of thread CPU ({args.rounds} × {args.calls:,} calls), "
          f"{_Context.added / (args.rounds * args.calls):.2f} add_callback a call")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
