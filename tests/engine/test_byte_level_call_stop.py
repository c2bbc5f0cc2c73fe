"""The byte-level core gives up midway under a call stop (tokend.engine.call_stop) on a big text: its deadline
passed or its caller went away. A text of at least 64 KiB (the core's unlocked path) looks at the stop every
64 KiB of pieces; the worst shape for its merges is many pieces of 129-511 bytes (the heap merge, ~0.1 s a MB on
cl100k_base), which before ran to its end whatever the call's deadline."""

from __future__ import annotations

import random
import string
import threading
import time

import pytest
import tiktoken

import tokend
from tokend.engine.call_stop import CallStop, CallStopped, stop_at


def _words(total: int, length: int = 300, seed: int = 13) -> str:
    """Random lowercase words of `length` letters, space-separated: pieces of length + 1 bytes, none a token."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=length)) for _ in range(total // (length + 1) + 1)]
    return " ".join(words)[:total]


TEXT = _words(2_000_000)


@pytest.fixture(scope="module")
def cl100k():
    return tokend.get_encoding("cl100k_base")


@pytest.mark.parametrize("method", ["encode", "encode_ordinary", "count"])
def test_a_passed_deadline_stops_a_big_text_midway(cl100k, method):
    call = getattr(cl100k, method)
    with pytest.raises(CallStopped), stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        call(TEXT)


def test_a_cancelled_call_stops_and_the_core_serves_the_next_call_whole(cl100k):
    stop = CallStop()
    stop.cancel()
    with pytest.raises(CallStopped), stop_at(stop):
        cl100k.encode_ordinary(TEXT)
    # Nothing of the stopped encode stays behind: the same text afterwards is tiktoken's ids.
    assert cl100k.encode_ordinary(TEXT[:300_000]) == tiktoken.get_encoding("cl100k_base").encode_ordinary(TEXT[:300_000])


def test_a_cancel_from_another_thread_stops_the_encode(cl100k):
    stop = CallStop()
    threading.Timer(0.02, stop.cancel).start()
    with pytest.raises(CallStopped), stop_at(stop):
        for _ in range(50):  # ~0.1-0.2 s each: the cancel lands in the first
            cl100k.count(TEXT)


def test_in_time_or_without_a_stop_the_answer_is_whole(cl100k):
    text = TEXT[:200_000]
    expected = tiktoken.get_encoding("cl100k_base").encode_ordinary(text)
    with stop_at(CallStop(deadline=time.monotonic() + 600)):
        assert cl100k.encode_ordinary(text) == expected
        assert cl100k.count(text) == len(expected)
    small = TEXT[:60_000]  # under 64 KiB: the core does not look at the stop (~10 ms at most)
    with stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        assert cl100k.encode_ordinary(small) == tiktoken.get_encoding("cl100k_base").encode_ordinary(small)


def test_raw_bytes_that_are_not_utf8_stop_midway_too(cl100k):
    # Bytes with an invalid byte take encode_bytes' GIL-held path (pieces encoded from a list): before, 8 MB of
    # them ran ~0.3 s to the end whatever the deadline. Now the pieces go a slice at a time, the stop looked at
    # between slices.
    data = TEXT.encode() + b"\xff"
    with pytest.raises(CallStopped), stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        cl100k.encode_bytes(data)
    stop = CallStop()
    stop.cancel()
    with pytest.raises(CallStopped), stop_at(stop):
        cl100k.encode_bytes(data)
    # In time, and without a stop, the ids are tiktoken's (the slices join exactly).
    part = data[:400_000] + b"\xc3"
    expected = tiktoken.get_encoding("cl100k_base")._encode_bytes(part)
    with stop_at(CallStop(deadline=time.monotonic() + 600)):
        assert cl100k.encode_bytes(part) == expected
    assert cl100k.encode_bytes(part) == expected
