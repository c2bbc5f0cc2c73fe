"""The budget operations' whole-text pass runs on the worker's bulk lane when the text is large, as Encode's
does (tokend.service.bulk_lane): Truncate, Chunk, ChunkStream and Encode with offsets of an input of at least
the lane's ``min_bytes`` hand its encode and then its alignment's walk (both GIL released in the engine) to a
lane thread; the chunk loop, which holds the GIL, stays on the caller's thread. Answers are tiktoken's and the
lane-less service's, and a call's deadline still stops the encode midway on the lane (a SentencePiece model
whose encode honours the call stop, as in test_call_stop).
"""

from __future__ import annotations

import threading
import time

import pytest
import tiktoken

from tokend.engine.call_stop import CallStopped
from tokend.registry import Registry
from tokend.service import CallCancelled, DeadlineExpired, Limits, ServedModels, SpecialTokenPolicy, TokenizerService
from tokend.service.bulk_lane import BulkLane

from tests.service.test_call_stop import LONG, TEXT, _Call, nested_models as served_nested_models

MIN_BYTES = 4096
DOCUMENT = "The quick brown fox jumps over the lazy dog. 🤖 Ünïcödé!\n\nA second paragraph, with two sentences. Yes.\n\n"
LARGE = DOCUMENT * 200  # ~20 KB
SMALL = DOCUMENT * 4  # below MIN_BYTES


class RecordingLane(BulkLane):
    """A bulk lane that notes the size of each item handed to it, the thread its work ran on, and which work it
    was (an alignment's walk, AlignmentWalk.run, or an encode)."""

    def __init__(self, **options) -> None:
        super().__init__(min_bytes=MIN_BYTES, **options)
        self.ran: list[tuple[int | None, str]] = []
        self.work: list[str] = []
        self.stopped: list[str] = []  # the work that gave up midway (CallStopped)

    def run(self, fn, *, call, size=None):
        kind = "alignment" if type(getattr(fn, "__self__", None)).__name__ == "AlignmentWalk" else "encode"

        def noted():
            self.ran.append((size, threading.current_thread().name))
            self.work.append(kind)
            self.starting(kind)
            try:
                return fn()
            except CallStopped:
                self.stopped.append(kind)
                raise

        return super().run(noted, call=call, size=size)

    def starting(self, kind: str) -> None:
        """Called on the lane thread as each piece of work starts."""


@pytest.fixture(scope="module")
def models():
    return ServedModels(Registry.open())


@pytest.fixture
def lane():
    lane = RecordingLane()
    yield lane
    lane.close()


@pytest.fixture(scope="module")
def oracle():
    return tiktoken.get_encoding("cl100k_base")


OPERATIONS = {
    "truncate": lambda service, text, **policy: [service.truncate("cl100k_base", [text], 300, **policy).results[0]],
    "truncate_left": lambda service, text, **policy: [service.truncate("cl100k_base", [text], 300, "left", **policy).results[0]],
    "chunk": lambda service, text, **policy: service.chunk("cl100k_base", [text], 64, overlap=8, **policy).results[0],
    "chunk_stream": lambda service, text, **policy: list(service.chunk_stream("cl100k_base", text, 64, **policy)),
    "offsets": lambda service, text, **policy: [service.encode_with_offsets("cl100k_base", [text], **policy)],
}


def _comparable(result) -> list:
    """An answer as plain values (the offsets' arrays as lists)."""
    return [
        (item.ids, [[list(column) for column in (spans.starts, spans.ends, spans.byte_starts, spans.byte_ends)] for spans in item.spans])
        if hasattr(item, "spans") else item
        for item in result
    ]  # fmt: skip


def _ids(result) -> list[list[int]]:
    return [list(item.ids[0] if hasattr(item, "spans") else item.ids) for item in result]


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_large_texts_encode_runs_on_the_lane_with_the_same_answer(models, lane, oracle, operation):
    run = OPERATIONS[operation]
    answer = run(TokenizerService(models, Limits(), lane=lane), LARGE)
    # the encode (sized in characters, as Encode's items), then the walk (in UTF-8 bytes)
    assert lane.work == ["encode", "alignment"]
    assert [size for size, _ in lane.ran] == [len(LARGE), len(LARGE.encode("utf-8"))]
    assert all(name.startswith("tokend-bulk-") for _, name in lane.ran)
    assert _comparable(answer) == _comparable(run(TokenizerService(models, Limits()), LARGE))
    for ids in _ids(answer):  # each piece's ids are tiktoken's of its own text (the whole, a chunk, the kept part)
        assert oracle.decode(ids) in LARGE and oracle.encode(oracle.decode(ids)) == ids


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_small_texts_encode_stays_on_the_calling_thread(models, lane, operation):
    OPERATIONS[operation](TokenizerService(models, Limits(), lane=lane), SMALL)
    assert lane.ran == []


@pytest.mark.parametrize("operation", ["truncate_left", "chunk", "offsets"])
def test_the_special_token_policy_goes_with_the_encode_to_the_lane(models, lane, oracle, operation):
    text = LARGE + "<|endoftext|>" + DOCUMENT
    allowed = SpecialTokenPolicy(allowed=frozenset({"<|endoftext|>"}))
    run = OPERATIONS[operation]
    answer = run(TokenizerService(models, Limits(), lane=lane), text, special=allowed)
    assert lane.work == ["encode", "alignment"]
    assert [size for size, _ in lane.ran] == [len(text), len(text.encode("utf-8"))]
    assert _comparable(answer) == _comparable(run(TokenizerService(models, Limits()), text, special=allowed))
    assert 100257 in [token for ids in _ids(answer) for token in ids]


@pytest.fixture(scope="module")
def nested_models(tmp_path_factory):
    return served_nested_models(tmp_path_factory.mktemp("budget-lane"))


@pytest.mark.parametrize("operation", [
    lambda service, call: service.truncate("nested", [LONG], 10, special=TEXT, call=call),
    lambda service, call: service.chunk("nested", [LONG], 100, special=TEXT, call=call),
    lambda service, call: list(service.chunk_stream("nested", LONG, 100, special=TEXT, call=call)),
    lambda service, call: service.encode_with_offsets("nested", [LONG], special=TEXT, call=call),
], ids=["truncate", "chunk", "chunk_stream", "offsets"])  # fmt: skip
def test_a_large_texts_encode_on_the_lane_stops_at_the_calls_deadline(nested_models, lane, operation):
    service = TokenizerService(nested_models, Limits(max_request_bytes=16 << 20), lane=lane)
    started = time.process_time()
    with pytest.raises(DeadlineExpired):
        operation(service, _Call(0.3))
    # generous: the whole encode is ~3 s of CPU; it stops within milliseconds of 0.3 s
    assert time.process_time() - started < 1.5
    assert [size for size, _ in lane.ran] == [len(LONG)] and lane.work == ["encode"]


class CancellingLane(RecordingLane):
    """Cancels the call as its alignment's walk starts on a lane thread (its encode is done): what the walk
    must notice midway, as a client going away then would make it."""

    def __init__(self, call) -> None:
        super().__init__()
        self.call = call

    def starting(self, kind: str) -> None:
        if kind == "alignment":
            self.call.cancel()


HUGE = DOCUMENT * 3_000  # ~310 KB, ~90,000 tokens: the walk looks at the call's stop every 65,536


@pytest.mark.parametrize("operation", [
    lambda service, call: service.truncate("cl100k_base", [HUGE], 10, call=call),
    lambda service, call: service.chunk("cl100k_base", [HUGE], 100, call=call),
    lambda service, call: list(service.chunk_stream("cl100k_base", HUGE, 100, call=call)),
    lambda service, call: service.encode_with_offsets("cl100k_base", [HUGE], call=call),
], ids=["truncate", "chunk", "chunk_stream", "offsets"])  # fmt: skip
def test_an_alignment_on_the_lane_stops_when_its_caller_goes(models, operation):
    call = _Call(None)
    lane = CancellingLane(call)
    try:
        with pytest.raises(CallCancelled):
            operation(TokenizerService(models, Limits(), lane=lane), call)
    finally:
        lane.close()
    # the walk itself gave up (not the service's checks between chunks after it)
    assert lane.work == ["encode", "alignment"] and lane.stopped == ["alignment"]
