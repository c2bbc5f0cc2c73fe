"""A call that is one request is a blocking gRPC call: no thread is started for it.

grpcio's `.future()` on a channel starts a channel-spin thread per call when nothing else is in flight
(~0.3 ms of CPU, as much as the call itself); the client sends only the requests of a split batch as futures.
"""

from __future__ import annotations

import threading

import tiktoken

import tokend_client


def test_single_requests_start_no_thread(client: tokend_client.TokendClient, monkeypatch) -> None:
    encoding = client.get_encoding("cl100k_base")
    reference = tiktoken.get_encoding("cl100k_base")
    started: list[str] = []
    start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for index in range(20):
        text = f"call {index}: hello world"
        assert encoding.encode(text) == reference.encode(text)
        assert encoding.count(text) == len(reference.encode(text))
        assert encoding.encode_batch([text, text]) == [reference.encode(text)] * 2
    assert started == []

