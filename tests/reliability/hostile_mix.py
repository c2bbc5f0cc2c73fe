"""Hostile request mixes, sent from a separate process while a test measures well-behaved calls.

A separate process, because a sender thread in the measuring process would share its GIL: building
and sending a 9 MB request would then delay the *measuring* thread, and the test would measure
itself. The sender gets its own interpreter (multiprocessing, spawn) and its own connections.

    sender = start_sender(target, "rejected", rate=50)  # returns once the sender runs
    ...                                                 # measure
    sent, wrong = stop_sender(*sender)                  # wrong: requests that got an unexpected status

Mixes:
- "rejected": small requests refused before any BPE work — over the item limit, a huge token id, an
  unknown model, a disallowed special token — each with its expected status;
- "oversized": a 9 MB text, over the byte limit (8 MiB) but under the message limit (16 MiB), so the
  worker receives and parses all of it before refusing it (RESOURCE_EXHAUSTED);
- "1 MB pieces": a valid 1 MB base64 piece without whitespace (seconds of CPU in one worker).
"""

from __future__ import annotations

import base64
import multiprocessing
import random
from typing import Any

__all__ = ["MIXES", "start_sender", "stop_sender"]

MB = 1_000_000
MIXES = ("rejected", "oversized", "1 MB pieces")
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
    ("grpc.use_local_subchannel_pool", 1),
]


def _mix(name: str, stubs: list[Any]) -> list[tuple[Any, Any, str]]:
    """[(stub method, request, expected status name)] of mix ``name``."""
    from tokend_api.v1 import tokenizer_pb2 as pb

    if name == "rejected":
        return [
            (stubs[0].Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="")] * 1025), "RESOURCE_EXHAUSTED"),
            (stubs[2].Decode, pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[2**32 - 1])]), "INVALID_ARGUMENT"),
            (stubs[3].CountTokens, pb.CountTokensRequest(model="no_such_model", inputs=[pb.Input(text="x")]), "NOT_FOUND"),
            (stubs[0].Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="a <|endoftext|> b")]), "INVALID_ARGUMENT"),
        ]
    if name == "oversized":
        return [(stubs[1].CountTokens, pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="x" * 9 * MB)]), "RESOURCE_EXHAUSTED")]
    if name == "1 MB pieces":
        piece = base64.b64encode(random.Random(2).randbytes(MB * 3 // 4)).decode()
        return [(stubs[1].Encode, pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=piece)]), "OK")]
    raise ValueError(f"unknown mix {name!r}; use one of {MIXES}")


def _send_until_stopped(target: str, name: str, rate: float | None, ready: Any, stop: Any, results: Any) -> None:
    import time

    import grpc

    from tokend_api.v1 import tokenizer_pb2_grpc

    channels = [grpc.insecure_channel(target, options=_CHANNEL_OPTIONS) for _ in range(4)]
    stubs = [tokenizer_pb2_grpc.TokenizerStub(channel) for channel in channels]
    mix = _mix(name, stubs)
    sent, wrong = 0, []
    ready.set()
    started = time.monotonic()
    while not stop.is_set():
        for method, request, expected in mix:
            if rate is not None:  # open loop at `rate` requests/s; late requests go at once
                delay = started + sent / rate - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            try:
                method(request, timeout=120)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            sent += 1
            if code != expected:
                wrong.append(f"{type(request).__name__} to {request.model!r}: {code}, expected {expected}")
    results.put((sent, wrong[:20]))
    for channel in channels:
        channel.close()


def start_sender(target: str, name: str, rate: float | None = None) -> tuple[Any, Any, Any]:
    """Start sending mix ``name`` to ``target`` from a new process, ``rate`` requests/s (None: each as
    soon as the previous one is answered); returns once it is sending."""
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=_send_until_stopped, args=(target, name, rate, ready, stop, results), daemon=True)
    process.start()
    if not ready.wait(60):
        process.kill()
        raise RuntimeError("the hostile sender did not start within 60 s")
    return process, stop, results


def stop_sender(process: Any, stop: Any, results: Any, timeout: float = 180) -> tuple[int, list[str]]:
    """Stop the sender (it finishes its current request); returns (requests sent, unexpected statuses)."""
    stop.set()
    try:
        sent, wrong = results.get(timeout=timeout)
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    return sent, wrong
