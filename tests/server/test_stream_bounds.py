"""What one Tokenizer stream may cost, against a real server (issue 13, hostile round 3).

- A ChunkStream whose overlap is max_tokens - 1 advances one token a chunk: its chunk count is reckoned with
  the overlap from the text's token count and refused before any chunk is made (it streamed 99,997 chunks of
  4,000 ids, ~950 MiB, for 14 s of CPU before it reached max_chunks), and its whole answer is bounded
  (``max_stream_answer_bytes``: four answer limits) when the count passes.
- A DecodeStream whose client sends nothing for ``--stream-idle-timeout`` seconds ends with DEADLINE_EXCEEDED
  and frees its stream slot (four such streams held every slot of a worker for ever: everyone else's streams
  got UNAVAILABLE). That a stream slow but sending is not ended is shown on a clock the test moves
  (tests/server/test_idle_streams.py): against this server a stall of the machine decided it.
- When every stream slot is taken, a new DecodeStream takes the slot of a stream whose client has sent nothing
  for ``--stream-yield-after`` seconds (a client that sent a message just under the idle timeout, for ever,
  held its slot until its connection's age, 320 s by default); a stream whose messages keep coming keeps its.
- A DecodeStream's messages are read at most ``--stream-message-rate`` a second (after a second's worth at
  once): a flood of one-id messages took 84% of a core from one stream.
- A ChunkStream holding room in the work budget whose client leaves its answers unread (reads nothing, or reads
  slowly) gives its room to a waiting request once charged 1 s of unread answers while room was wanted, not only
  after one answer unread for ``--stream-yield-after``; a client that keeps up is never charged.
- While such a stream holds its reservation, the worker's small requests' answers (16 KiB or more) are sent: large
  requests leave ``--answer-room-bytes`` of the budget to them.

The worker's CPU is read from /proc (user + system time of its process), so the bounds are generous.
"""

from __future__ import annotations

import os
import queue
import threading
import time

import grpc
import pytest
import tiktoken

from support.server import TokendServer
from tokend_api.v1 import tokenizer_pb2 as pb

from .status_details import details_of

# Answers up to 1 MiB, so a stream answers up to 4 MiB in all.
MESSAGE_BYTES = 1 << 20


@pytest.fixture(scope="module")
def server(registry_dir):
    server = TokendServer("--max-message-bytes", str(MESSAGE_BYTES), registry=registry_dir, workers=1, models=["cl100k_base"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def idle_server(registry_dir):
    """Streams idle for 1 s are ended."""
    server = TokendServer("--stream-idle-timeout", "1", registry=registry_dir, workers=1, models=["cl100k_base"]).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def contended_server(registry_dir):
    """Streams silent for 2 s give their slot to a new stream; messages read at most 100 a second; no room kept for
    answers (a large request may reserve the whole budget: an answer then finds none, and asks for it)."""
    server = TokendServer(
        "--stream-yield-after", "2", "--stream-message-rate", "100", "--answer-room-bytes", "0",
        registry=registry_dir, workers=1, models=["cl100k_base"],
    ).start()
    yield server
    server.stop()


def _threads(server: TokendServer) -> int:
    (pid,) = server.worker_pids()
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def _cpu_seconds(server: TokendServer) -> float:
    total = 0.0
    for pid in server.worker_pids():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _stream_chunks(stub, request: pb.ChunkRequest) -> tuple[int, int, grpc.RpcError | None]:
    """Chunks and ids the client received, and the error that ended the stream (None: it ended well)."""
    chunks = ids = 0
    try:
        for message in stub.ChunkStream(request, timeout=120):
            chunks += len(message.chunks)
            ids += sum(len(chunk.ids) for chunk in message.chunks)
    except grpc.RpcError as error:
        return chunks, ids, error
    return chunks, ids, None


def test_an_overlap_that_advances_one_token_a_chunk_is_counted_before_any_chunk(server):
    stub = server.stub()
    # ~300,000 tokens; overlap 3,999 of 4,000: ~296,000 chunks of 4,000 ids each, over max_chunks (100,000).
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="word. " * 150_000)], max_tokens=4000, overlap=3999)
    before = _cpu_seconds(server)
    chunks, ids, error = _stream_chunks(stub, request)
    spent = _cpu_seconds(server) - before
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error
    assert chunks == 0, f"{chunks} chunks ({ids} ids) were made and sent before the refusal"
    exceeded = details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]
    assert exceeded["limit_name"] == "max_chunks" and exceeded["limit"] == "100000"
    assert int(exceeded["actual"]) > 290_000  # the count the overlap gives, not the limit + 1
    assert "overlap" in error.details() and "max_tokens" in error.details()
    assert spent < 3.0, f"the refusal cost {spent:.1f} s of worker CPU"
    # The unary Chunk of the same request: the same refusal.
    with pytest.raises(grpc.RpcError) as unary:
        stub.Chunk(request, timeout=60)
    assert details_of(unary.value).error_info["REQUEST_LIMIT_EXCEEDED"]["limit_name"] == "max_chunks"


def test_a_chunk_streams_whole_answer_is_bounded(server):
    stub = server.stub()
    # ~30,000 tokens: ~26,000 chunks (under max_chunks) of 4,000 ids, ~100 M ids in all; four answer limits
    # (4 MiB here) hold ~1.4 M ids of cl100k_base counted at 3 bytes each.
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="word. " * 15_000)], max_tokens=4000, overlap=3999)
    before = _cpu_seconds(server)
    chunks, ids, error = _stream_chunks(stub, request)
    spent = _cpu_seconds(server) - before
    assert error is not None and error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (chunks, ids)
    exceeded = details_of(error).error_info["REQUEST_LIMIT_EXCEEDED"]
    assert exceeded["limit_name"] == "max_stream_answer_bytes" and int(exceeded["limit"]) == 4 * MESSAGE_BYTES
    assert "overlap" in error.details()
    assert 0 < ids <= 4 * MESSAGE_BYTES, ids  # what came before the refusal, every id at least a byte
    assert spent < 2.0, f"the stream cost {spent:.1f} s of worker CPU"
    # A stream within the bound is answered whole, as Chunk answers it.
    small = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="word. " * 300)], max_tokens=40, overlap=30)
    streamed = [chunk for message in stub.ChunkStream(small, timeout=30) for chunk in message.chunks]
    assert streamed == list(stub.Chunk(small, timeout=30).results[0].chunks)


def test_a_chunk_stream_refused_midway_has_sent_every_chunk_made_before_the_refusal(server):
    """A stream's chunk texts may be 4 MiB here (``max_stream_answer_bytes``): 600 tokens of 128 spaces (76,800
    bytes) a chunk, overlapping by 599, make 54 chunks within it and the 55th is refused. The 54 were made,
    and counted against the stream: each reaches the client before RESOURCE_EXHAUSTED. The adapter held the
    chunks of its next message (up to 64 KB of them) and dropped them with the error: 45 arrived."""
    token = " " * 128
    (space_id,) = tiktoken.get_encoding("cl100k_base").encode(token)
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=token * 1200)], max_tokens=600, overlap=599,
                              prefer=pb.ChunkRequest.PREFER_TOKEN)
    received = []
    with pytest.raises(grpc.RpcError) as refused:
        for message in server.stub().ChunkStream(request, timeout=60):
            received += message.chunks
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
    exceeded = details_of(refused.value).error_info["REQUEST_LIMIT_EXCEEDED"]
    assert exceeded["limit_name"] == "max_stream_answer_bytes" and "chunk text" in refused.value.details()
    made = 4 * MESSAGE_BYTES // (600 * 128)
    assert [(chunk.start, chunk.end) for chunk in received] == [(128 * k, 128 * (k + 600)) for k in range(made)]
    assert all(list(chunk.ids) == [space_id] * 600 for chunk in received)


class _QuietStream:
    """A DecodeStream whose client sends ``first`` (None: nothing) and then nothing, until ``close``."""

    def __init__(self, stub, first: pb.DecodeStreamRequest | None) -> None:
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        if first is not None:
            self.requests.put(first)
        self.responses = stub.DecodeStream(iter(self.requests.get, None), timeout=60)
        self.texts: list[str] = []
        self.error: grpc.RpcError | None = None
        self.ended_at: float | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            for response in self.responses:
                self.texts.append(response.text)
        except grpc.RpcError as error:
            self.error = error
        self.ended_at = time.monotonic()

    def wait(self, timeout: float) -> None:
        self._reader.join(timeout)

    def close(self) -> None:
        self.requests.put(None)
        self._reader.join(10)


def _quiet_round(stub) -> list[_QuietStream]:
    """Four quiet streams (every slot of the worker): three sent one message, one nothing at all; once ended."""
    started = time.monotonic()
    quiet = [_QuietStream(stub, pb.DecodeStreamRequest(model="cl100k_base", ids=[15339])) for _ in range(3)]
    quiet.append(_QuietStream(stub, None))
    for stream in quiet:
        stream.wait(15)
    for stream in quiet:
        assert stream.error is not None, "the stream is still open"
        assert stream.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, stream.error
        assert "stream_idle_timeout" in stream.error.details()
        assert stream.ended_at - started < 8, f"ended after {stream.ended_at - started:.1f} s (timeout 1 s)"
    assert [stream.texts for stream in quiet] == [["hello"]] * 3 + [[]]
    return quiet


def test_streams_whose_clients_send_nothing_are_ended_and_free_their_slots(idle_server):
    hostile, other = idle_server.stub(), idle_server.stub()
    cpu_before = _cpu_seconds(idle_server)
    first = _quiet_round(hostile)  # their clients keep the calls open (never close their side)
    # Everyone else's streams run again.
    chunk = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text="hello world")], max_tokens=5)
    assert [c.end for m in other.ChunkStream(chunk, timeout=10) for c in m.chunks] == [11]
    decoded = other.DecodeStream(iter([pb.DecodeStreamRequest(model="cl100k_base", ids=[15339, 1917])]), timeout=10)
    assert "".join(response.text for response in decoded) == "hello world"
    # Each stream's reader thread left with its stream, though its client never closed: another round leaves
    # no more threads than the first did (the handler pool grows to its size once; a reader left behind would
    # add four a round).
    time.sleep(0.5)
    threads = _threads(idle_server)
    second = _quiet_round(hostile)
    time.sleep(0.5)
    assert _threads(idle_server) <= threads
    assert _cpu_seconds(idle_server) - cpu_before < 2.0
    for stream in first + second:
        stream.close()


def test_a_new_stream_takes_the_slot_of_a_stream_whose_client_is_silent(contended_server):
    stub = contended_server.stub()
    hello = pb.DecodeStreamRequest(model="cl100k_base", ids=[15339])
    quiet = [_QuietStream(stub, hello) for _ in range(3)]
    busy = _QuietStream(stub, hello)  # sends a message every 0.2 s
    sending = threading.Event()
    sending.set()

    def keep_sending() -> None:
        while sending.is_set():
            busy.requests.put(pb.DecodeStreamRequest(ids=[1917]))
            time.sleep(0.2)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    newcomers: list[_QuietStream] = []
    try:
        time.sleep(3.0)  # the quiet ones have waited 3 s for their clients; every slot is taken
        assert all(stream.error is None for stream in quiet + [busy])
        # Each newcomer takes the slot of one quiet stream (the one the server saw silent longest).
        first_newcomer = time.monotonic()
        for number in range(3):
            newcomers.append(_QuietStream(stub, hello))
            deadline = time.monotonic() + 10
            while sum(stream.ended_at is not None for stream in quiet) <= number and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sum(stream.ended_at is not None for stream in quiet) == number + 1
        for stream in quiet:
            assert stream.error is not None and stream.error.code() == grpc.StatusCode.DEADLINE_EXCEEDED, stream.error
            assert "stream_yield_after" in stream.error.details() and "another stream needed" in stream.error.details()
            assert stream.texts == ["hello"]
        time.sleep(0.5)
        assert [stream.error for stream in newcomers] == [None] * 3
        assert [stream.texts for stream in newcomers] == [["hello"]] * 3
        # Now every slot holds a stream that is busy or was silent for less than 2 s: a fifth is refused (unless
        # the machine was so slow that a newcomer has been silent for 2 s by now: then it yields, as it should).
        if time.monotonic() - first_newcomer < 1.5:
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.DecodeStream(iter([hello]), timeout=10))
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value
        assert busy.error is None
    finally:
        sending.clear()
        sender.join(5)
        for stream in quiet + newcomers + [busy]:
            stream.close()
    assert busy.error is None and "".join(busy.texts).startswith("hello world world")


def test_a_flood_of_messages_is_read_at_the_streams_rate(contended_server):
    stub = contended_server.stub()
    count = 400

    def flood():
        yield pb.DecodeStreamRequest(model="cl100k_base", ids=[15339])
        for _ in range(count - 1):
            yield pb.DecodeStreamRequest(ids=[1917])

    started = time.monotonic()
    texts = [response.text for response in stub.DecodeStream(flood(), timeout=60)]
    elapsed = time.monotonic() - started
    assert "".join(texts) == "hello" + " world" * (count - 1)  # every message answered, in order
    # 100 at once, then 100 a second: a bound from below, which a slow machine only makes longer (it took
    # ~0.1 s, the worker reading as fast as the client sent)
    assert elapsed >= 0.9 * (count - 100) / 100, elapsed


def test_streams_whose_clients_never_read_their_answers_give_up_their_slots(contended_server):
    """Four DecodeStreams, each on its own connection, send 120 messages of 8,000 copies of cl100k's longest
    token (~24 KB each, a ~1 MB answer each) and never read an answer. Once the transport's windows are full,
    each handler waits in gRPC's send, not for its client's next message: the slot yield did not count it,
    and the four held every slot of the worker until their connections' age (320 s by default) for ~3 MB of
    upload each (a fifth stream UNAVAILABLE 5 times over 13 s, yield after 2 s). An answer its client has not
    taken for the yield time counts as silence: the newcomer takes that stream's slot (cancelled: its client
    is not reading, no status would reach it); the other three keep theirs."""
    import tiktoken

    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    oracle = tiktoken.get_encoding("cl100k_base")
    longest = max(range(100_000), key=lambda token: len(oracle.decode_single_token_bytes(token)))
    channels, calls = [], []
    try:
        for _ in range(4):
            channel = grpc.insecure_channel(contended_server.target)
            messages = [pb.DecodeStreamRequest(model="cl100k_base", ids=[longest] * 8000)]
            messages += [pb.DecodeStreamRequest(ids=[longest] * 8000) for _ in range(119)]
            calls.append(pb_grpc.TokenizerStub(channel).DecodeStream(iter(messages), timeout=60))  # never read
            channels.append(channel)
        time.sleep(5.0)  # the answers fill the windows; past the yield time (2 s) of every one of them
        hello = pb.DecodeStreamRequest(model="cl100k_base", ids=[15339])
        answered = list(contended_server.stub().DecodeStream(iter([hello]), timeout=10))
        assert "".join(response.text for response in answered) == "hello"
    finally:
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()


def _unread_chunk_stream(server: TokendServer, document: str, max_tokens: int):
    """A ChunkStream of ``document`` on a connection of its own whose client takes the first answer and then no
    more (no BDP probe: the windows stay small, so the server's send stalls soon). (call, channel)."""
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(
        server.target, options=[("grpc.use_local_subchannel_pool", 1), ("grpc.http2.bdp_probe", 0)]
    )
    call = pb_grpc.TokenizerStub(channel).ChunkStream(
        pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=document)], max_tokens=max_tokens), timeout=120
    )
    assert next(call).chunks
    return call, channel


def _words(count: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return " ".join("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(count))


def test_a_chunk_stream_whose_client_stops_reading_gives_its_reservation_to_a_waiting_request(contended_server):
    """A ChunkStream of a 4 MB document reserves 246 of the 256 MiB work budget of its worker (2 x an encode's
    working memory) until its call ends. Its client took the first answer and then read nothing: the handler
    waited in gRPC's send, and the stream kept its reservation until its deadline or its connection's age
    (320 s by default), while every large request of the worker (a CountTokens of 650 KB reserves 12 MiB) waited
    behind it until its own deadline (DEADLINE_EXCEEDED "Stream removed" at 15 s, every time, 190 s measured).
    Now a large request that has waited for room ends the stream whose answer has been unread for
    --stream-yield-after (2 s here): cancelled, its reservation given back, the request answered."""
    import tiktoken

    document = _words(620_000, seed=1)
    assert len(document.encode()) > 3_900_000
    holder, channel = _unread_chunk_stream(contended_server, document, max_tokens=50)
    try:
        time.sleep(0.5)  # its answers fill the windows
        text = _words(100_000, seed=2)  # ~650 KB: 12.4 MiB of merge memory (20 a byte), past the 10 MiB left
        started = time.monotonic()
        request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
        counted = contended_server.stub().CountTokens(request, timeout=15)
        assert counted.total == len(tiktoken.get_encoding("cl100k_base").encode_ordinary(text))
        assert time.monotonic() - started < 12  # the yield time and a second's ask: ~3 s
        with pytest.raises(grpc.RpcError) as ended:
            for _ in holder:  # its client reads on: the stream was cancelled
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED, ended.value
    finally:
        holder.cancel()
        channel.close()


def test_chunk_streams_whose_clients_stop_reading_give_up_their_slots(contended_server):
    """Four ChunkStreams of 260 KB, each on its own connection, whose clients take the first answer and then
    no more, held every stream slot of the worker until their deadline or their connections' age: the slot
    yield counted only DecodeStreams (a fifth stream got UNAVAILABLE for as long as they lasted). Now a
    ChunkStream whose answer has been unread for --stream-yield-after yields its slot as a DecodeStream does
    (cancelled)."""
    held = [_unread_chunk_stream(contended_server, _words(40_000, seed=10 + n), max_tokens=2) for n in range(4)]
    try:
        time.sleep(3.0)  # past the yield time of all four
        hello = pb.DecodeStreamRequest(model="cl100k_base", ids=[15339])
        answered = list(contended_server.stub().DecodeStream(iter([hello]), timeout=10))
        assert "".join(response.text for response in answered) == "hello"
    finally:
        for call, channel in held:
            call.cancel()
            channel.close()


def test_a_chunk_stream_whose_client_stops_reading_gives_its_reservation_to_an_answer(contended_server):
    """An unread ChunkStream of a 4.4 MB document (the whole budget reserved), and another client's Encode of 60 KB of text (a ~30 KB
    answer: 16 KiB or more holds 3 x its bytes of the work budget until sent). The budget full, the answer was
    refused at once, UNAVAILABLE "this worker holds 256 MiB of answers not yet sent and of large requests'
    memory", for as long as the stream lasted (298 of ~3,250 small Encodes in 40 s beside two such clients).
    Now an answer that does not fit asks for room first: the stream unread for --stream-yield-after is
    cancelled, and the answer sent. (With the answer room kept by default, such an answer fits beside the stream:
    next test; here none is kept, as when the room is full of other answers.)"""
    import tiktoken

    document = _words(680_000, seed=3)  # 4.4 MB: the whole 256 MiB
    holder, channel = _unread_chunk_stream(contended_server, document, max_tokens=50)
    try:
        time.sleep(3.0)  # past the yield time (2 s)
        text = _words(9_000, seed=4)
        request = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
        encoded = contended_server.stub().Encode(request, timeout=15)
        assert list(encoded.results[0].ids) == tiktoken.get_encoding("cl100k_base").encode_ordinary(text)
        assert encoded.ByteSize() >= 16 << 10
        with pytest.raises(grpc.RpcError) as ended:
            for _ in holder:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED, ended.value
    finally:
        holder.cancel()
        channel.close()


def test_a_chunk_stream_holding_the_budget_leaves_room_for_other_clients_answers(patient_server):
    """Issue 13 (room22): a ChunkStream of a 4.4 MB document reserved the whole 256 MiB work budget until it ended, and
    while it held it every answer of 16 KiB or more of the worker's small requests was refused (UNAVAILABLE "this
    worker holds 256 MiB of answers not yet sent and of large requests' memory"), whoever held the stream: beside a
    client reopening it every 0.9-2 s (before its room charge of 1 s ends it), or two clients streaming such documents
    back to back and reading them at once, most small Encodes and Decodes were refused. Large requests now leave an
    eighth of the budget to answers: the small requests beside the unread stream are answered (ids and text
    tiktoken's), and the stream, whose room nobody wanted meanwhile, ends whole once its client reads on."""
    import tiktoken

    oracle = tiktoken.get_encoding("cl100k_base")
    document = _words(680_000, seed=3)  # 4.4 MB: the whole budget, less the answer room now
    text = _words(9_000, seed=4)  # ~60 KB: a ~30 KB answer, held 3 times over in the budget until sent
    long_token = next(token for token in range(100_000) if len(oracle.decode_single_token_bytes(token)) == 128)
    encode = pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=text)])
    decode = pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[long_token] * 10_000)])  # a 1.28 MB answer
    holder, channel = _unread_chunk_stream(patient_server, document, max_tokens=50)
    try:
        stub = patient_server.stub()
        for _ in range(5):
            encoded = stub.Encode(encode, timeout=15)  # UNAVAILABLE on main
            assert list(encoded.results[0].ids) == oracle.encode_ordinary(text)
            assert encoded.ByteSize() >= 16 << 10
            decoded = stub.Decode(decode, timeout=15)
            assert decoded.results[0].text.encode() == oracle.decode_bytes([long_token] * 10_000)
        ends = [chunk.end for message in holder for chunk in message.chunks]
        assert ends[-1] == len(document) and ends == sorted(ends)
    finally:
        holder.cancel()
        channel.close()


@pytest.fixture(scope="module")
def patient_server(registry_dir):
    """Streams yield their slot only after 30 s of silence: a stream holding room must yield it sooner."""
    server = TokendServer("--stream-yield-after", "30", registry=registry_dir, workers=1, models=["cl100k_base"]).start()
    yield server
    server.stop()


class _Reader(threading.Thread):
    """Reads a stream's answers, one every ``every`` seconds (0: as fast as it can), until it ends; ``error`` is
    what ended it (None: it ended well), ``ends`` the chunks' end offsets."""

    def __init__(self, call, every: float) -> None:
        super().__init__(daemon=True)
        self.call, self.every = call, every
        self.error: grpc.RpcError | None = None
        self.ends: list[int] = []

    def run(self) -> None:
        try:
            for message in self.call:
                self.ends.extend(chunk.end for chunk in message.chunks)
                time.sleep(self.every)
        except grpc.RpcError as error:
            self.error = error


def _large_count(server: TokendServer, seed: int) -> None:
    """A CountTokens of ~650 KB (12.4 MiB of merge memory: past the 10 MiB a 4 MB document's stream leaves),
    answered within its 10 s deadline, and its count tiktoken's."""
    import tiktoken

    text = _words(100_000, seed=seed)
    counted = server.stub().CountTokens(pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text=text)]), timeout=10)
    assert counted.total == len(tiktoken.get_encoding("cl100k_base").encode_ordinary(text))


def test_a_chunk_stream_left_unread_yields_its_reservation_a_second_after_room_is_wanted(patient_server):
    """A ChunkStream of a 4 MB document (246 of the 256 MiB work budget) whose client reads nothing after its first
    answer gave its reservation to a waiting request only once its answer had been unread for --stream-yield-after
    (10 s by default, 30 s here): a client reopening such a stream more often than that kept the room most of the
    time (700 KB CountTokens beside it took 12-23 s). Now a stream holding room is cancelled once its answers have
    been unread for 1 s in all while others wanted room: the CountTokens is answered (DEADLINE_EXCEEDED at its 10 s
    deadline before)."""
    holder, channel = _unread_chunk_stream(patient_server, _words(620_000, seed=1), max_tokens=50)
    try:
        time.sleep(0.5)  # its answers fill the windows
        _large_count(patient_server, seed=2)
        with pytest.raises(grpc.RpcError) as ended:
            for _ in holder:
                pass
        assert ended.value.code() == grpc.StatusCode.CANCELLED, ended.value
    finally:
        holder.cancel()
        channel.close()


def test_a_chunk_stream_read_slowly_yields_its_reservation_to_a_waiting_request(patient_server):
    """The same stream read an answer every 0.25 s: no answer was ever unread for --stream-yield-after, so it kept
    its reservation for the whole document (182 answers: ~45 s) while every large request of the worker waited
    (DEADLINE_EXCEEDED at 10 s). A budget hog that reads slowly: its answers were unread ~85 % of the time, and
    that time, while others want room, is charged to it."""
    channel, call = _chunk_stream(patient_server, bdp_probe=False, max_tokens=50)
    reader = _Reader(call, every=0.25)
    reader.start()
    try:
        _until_reading(reader)
        _large_count(patient_server, seed=3)
        reader.join(30)
        assert reader.error is not None and reader.error.code() == grpc.StatusCode.CANCELLED, reader.error
    finally:
        call.cancel()
        channel.close()


def test_a_chunk_stream_read_at_once_keeps_its_reservation_while_room_is_wanted(patient_server):
    """A client that reads its answers as they come is not charged for the room others want meanwhile: its stream
    of the 4 MB document ends whole, and the large request waiting for its room is answered after it."""
    channel, call = _chunk_stream(patient_server, max_tokens=50)
    reader = _Reader(call, every=0.0)
    reader.start()
    try:
        _until_reading(reader)
        _large_count(patient_server, seed=4)
        reader.join(60)
        assert reader.error is None, reader.error
        assert reader.ends[-1] == len(_words(620_000, seed=1)) and reader.ends == sorted(reader.ends)
    finally:
        call.cancel()
        channel.close()


def test_a_chunk_stream_whose_overlap_multiplies_its_answer_earns_no_more_credit_than_its_text(patient_server):
    """Issue 13 (hostile21): overlapping chunks repeat the text's ids. A client reading 1.3 MiB/s of the answer of
    the 3.7 MB document with max_tokens 1600, overlap 1450 (41 MiB: 10x the text) was credited a second a MiB for
    it, more than the unread time it was charged, and kept the worker's room for its whole answer (~30 s) while the
    large CountTokens beside it waited until its deadline (DEADLINE_EXCEEDED at 10 s). No more MiB than the text's
    earn credit now: the stream is cancelled within seconds and the CountTokens answered."""
    channel, call = _chunk_stream(patient_server, bdp_probe=False, max_tokens=1600, overlap=1450)
    ended: list[grpc.RpcError | None] = []
    taken = [0]

    def read_at_1_3_mib_a_second() -> None:
        started = time.monotonic()
        try:
            for message in call:
                taken[0] += message.ByteSize()
                time.sleep(max(0.0, taken[0] / (1.3 * (1 << 20)) - (time.monotonic() - started)))
            ended.append(None)
        except grpc.RpcError as error:
            ended.append(error)

    reader = threading.Thread(target=read_at_1_3_mib_a_second, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not taken[0]:
            assert time.monotonic() < deadline, "no answer in 30 s"
            time.sleep(0.01)
        _large_count(patient_server, seed=5)
        reader.join(60)
        assert ended and ended[0] is not None and ended[0].code() == grpc.StatusCode.CANCELLED, ended
        assert taken[0] < 30 << 20  # not its whole answer (41 MiB)
    finally:
        call.cancel()
        channel.close()


def _until_reading(reader: _Reader) -> None:
    """Until the stream's first chunks came (its reservation is held, its whole-text pass done)."""
    deadline = time.monotonic() + 30
    while not reader.ends and reader.is_alive():
        assert time.monotonic() < deadline, "no chunk in 30 s"
        time.sleep(0.01)


def _chunk_stream(server: TokendServer, *, bdp_probe: bool = True, **chunking):
    """A channel of its own and a ChunkStream of the 4 MB document on it (``chunking``: max_tokens, overlap).
    Without the BDP probe the windows stay small, so the server's sends wait for the reader (with it, they grow
    to hold the whole answer, the handler ends and gives its reservation back at once)."""
    from tokend_api.v1 import tokenizer_pb2_grpc as pb_grpc

    options = [("grpc.use_local_subchannel_pool", 1)] + ([] if bdp_probe else [("grpc.http2.bdp_probe", 0)])
    channel = grpc.insecure_channel(server.target, options=options)
    request = pb.ChunkRequest(model="cl100k_base", inputs=[pb.Input(text=_words(620_000, seed=1))], **chunking)
    return channel, pb_grpc.TokenizerStub(channel).ChunkStream(request, timeout=120)
