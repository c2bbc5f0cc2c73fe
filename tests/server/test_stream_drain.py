"""A worker draining (SIGTERM) with Tokenizer streams open, against a real server: each DecodeStream answers
the messages it received and then ends with UNAVAILABLE saying the worker is draining (its client opens a new
stream elsewhere); a ChunkStream in flight sends its whole answer; the worker ends once they are done, not
after its grace period. The request messages' side, without a server: tests/server/test_idle_streams.py."""

from __future__ import annotations

import queue
import random
import re
import signal
import string
import threading
import time

import grpc
import tiktoken

from support.server import start_server
from support.waiting import wait_for
from tokend_api.v1 import tokenizer_pb2 as pb

GRACE_PERIOD = 40  # seconds; the drain must end well before it (it ended at it, the streams cut)


class _DecodeClient:
    """A DecodeStream whose client sends ``first`` (None: nothing) and then what the test puts in ``requests``;
    ``busy``: it sends the next message as soon as the last one is answered, each a few ids."""

    def __init__(self, stub, first: pb.DecodeStreamRequest | None, busy: list[int] | None = None) -> None:
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        self.sent: list[list[int]] = []
        if first is not None:
            self.requests.put(first)
            self.sent.append(list(first.ids))
        self.texts: list[str] = []
        self.error: grpc.RpcError | None = None
        self.answered = threading.Event()  # the first answer came
        self._busy = busy
        self._responses = stub.DecodeStream(iter(self.requests.get, None), timeout=120)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self._responses:
                self.texts.append(response.text)
                self.answered.set()
                if self._busy is not None:
                    self.sent.append(self._busy)
                    self.requests.put(pb.DecodeStreamRequest(ids=self._busy))
        except grpc.RpcError as error:
            self.error = error

    def wait(self, timeout: float) -> bool:
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def close(self) -> None:
        self.requests.put(None)


def _in_flight(metrics_text: str, method: str) -> float:
    pattern = re.compile(r'^tokend_rpc_in_flight\{[^}]*grpc_method="%s"[^}]*\}\s+(\S+)' % method, re.M)
    return sum(float(value) for value in pattern.findall(metrics_text))



def test_sigterm_ends_open_streams_once_answered_and_the_worker_with_them(registry_dir):
    """Issue 13: open DecodeStreams held a draining worker for its whole grace period (20 s by default), and
    then were cut with the process ("Socket closed"), whatever their clients had sent meanwhile. A stream
    waits for its client's next message as long as the client likes (a generation lasts minutes), so the drain
    cannot wait for it: each stream now ends with UNAVAILABLE (a status its client retries, on a new stream)
    the first time it would wait for its client once draining began, every message it received answered."""
    reference = tiktoken.get_encoding("cl100k_base")
    hello, world = reference.encode("hello"), reference.encode(" world")
    rng = random.Random(13)
    # A ChunkStream whose answer (~8 MB) its client reads only after SIGTERM: gRPC holds its handler in the
    # send once the transport's windows are full, so it is in flight through the drain.
    document = " ".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(500_000))
    with start_server(registry=registry_dir, grace_period=GRACE_PERIOD, drain_flush=None) as server:
        stub = server.stub(server.channel())
        quiet = _DecodeClient(stub, pb.DecodeStreamRequest(model="cl100k_base", ids=hello))  # then nothing
        unopened = _DecodeClient(stub, None)  # sends nothing at all
        busy = _DecodeClient(stub, pb.DecodeStreamRequest(model="cl100k_base", ids=hello), busy=world)
        chunks = stub.ChunkStream(
            pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=40), timeout=120
        )
        streams = [quiet, unopened, busy]
        try:
            assert quiet.answered.wait(30) and busy.answered.wait(30)
            wait_for(lambda: _in_flight(server.scrape_metrics(), "DecodeStream") == 3, 30, "3 DecodeStreams in flight")
            wait_for(lambda: _in_flight(server.scrape_metrics(), "ChunkStream") == 1, 30, "the ChunkStream in flight")
            signalled = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            for stream in streams:
                assert stream.wait(GRACE_PERIOD / 2), "a DecodeStream is still open"
            # The chunks the ChunkStream's handler was holding, and every later one: the whole document.
            ends = [chunk.end for message in chunks for chunk in message.chunks]
            assert ends[-1] == len(document) and ends == sorted(ends)
            exit_code = server.process.wait(timeout=GRACE_PERIOD / 2)
            drained_in = time.monotonic() - signalled
        finally:
            for stream in streams:
                stream.close()
        assert exit_code == 0, server.stderr_text()[-3000:]
        for stream in streams:
            assert stream.error is not None and stream.error.code() == grpc.StatusCode.UNAVAILABLE, stream.error
            assert "draining" in stream.error.details(), stream.error.details()
        # Every answer the busy client got is the decoding of the messages it answers, in order: none was
        # skipped, and the one its client sent as the stream ended (if any) got no answer it did not see.
        assert len(busy.texts) in (len(busy.sent), len(busy.sent) - 1)
        answered = [token for message in busy.sent[: len(busy.texts)] for token in message]
        assert "".join(busy.texts) == reference.decode(answered)
        assert quiet.texts == ["hello"] and unopened.texts == []
        stopped = server.events("worker_stopped")
        assert stopped and stopped[0]["calls_cut"] == 0, stopped
        # The drain ended the 3 DecodeStreams and left the ChunkStream to finish ("streams_ended": 4 before, the
        # ChunkStream among the streams it had ended).
        assert stopped[0]["decode_streams_ended"] == 3 and stopped[0]["chunk_streams_finishing"] == 1, stopped
    print(f"drained in {drained_in:.1f} s (grace period {GRACE_PERIOD} s); the busy stream answered {len(busy.texts)}")
