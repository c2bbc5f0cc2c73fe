"""One big encode does not stall the other threads of the process (a server worker's other calls): the
native core merges long pieces and encodes big texts without the GIL. With the GIL held for the whole
call, no other thread could run Python while it runs.

Counted, not timed: the big call runs in a thread; this thread sleeps 1 ms at a time and counts how often it
ran Python while the call was in progress. Holding the GIL for the whole call, the count is at most 1 (the
moment between the call's return and its flag), whatever the machine's load: this thread can only run when
the call lets it. Releasing it, this thread gets in at every wake-up (merges without the GIL) or at the
next yield once it has asked for the GIL for a switch interval (CPython then hands over before the yielder
may continue), so a call lasting tens of milliseconds gives many. How many per second is a figure of the
service benchmark (docs/bench-service.md), not of this test.
"""

from __future__ import annotations

import functools
import random
import string
import sys
import threading
import time

import pytest
import tiktoken

import tokend

RAN_DURING = 3


def _runs_during(big_call) -> tuple[int, object]:
    enc = tokend.get_encoding("cl100k_base")
    inside, returned = threading.Event(), threading.Event()
    result: list[object] = []

    def run() -> None:
        inside.set()
        result.append(big_call(enc))
        returned.set()

    thread = threading.Thread(target=run)
    thread.start()
    inside.wait()
    runs = 0
    while not returned.is_set():
        time.sleep(0.001)  # lets the big call have the GIL; afterwards this thread needs it back
        if not returned.is_set():
            runs += 1
    thread.join()
    return runs, result[0]


@pytest.mark.parametrize(
    "kind, text",
    [
        # one 1 MB piece: a single long merge
        ("one long piece", "".join(random.Random(3).choices(string.ascii_lowercase, k=1_000_000))),
        # 4 MB of ordinary words, all distinct: many short pieces
        ("many pieces", " ".join("".join(random.Random(i).choices("etaoinshrdlu", k=7)) for i in range(500_000))),
    ],
    ids=["one long piece", "many pieces"],
)
def test_other_threads_run_during_a_big_encode(kind, text):
    runs, ids = _runs_during(lambda enc: enc.encode_ordinary(text))
    assert ids == tiktoken.get_encoding("cl100k_base").encode(text)
    assert runs >= RAN_DURING, f"{kind}: another thread ran Python only {runs} times while the big encode ran"


def test_other_threads_run_during_a_big_alignment():
    """The offsets/cut-point walk (engine/_alignment) runs with the GIL released: with a switch interval of 1 s, a
    walk of ~20-100 ms that held the GIL (handing it over once an interval and a quarter, as it did) would let
    this thread run at most once; released, it runs at its wake-ups. The ids are copied under the GIL first
    (~10 ms here), so the walk's tokens are many."""
    from tokend.engine._alignment import align

    tokens = 4_000_000
    text, ids, table = "a" * tokens, [0] * tokens, [b"a"]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        runs, result = _runs_during(lambda enc: align(text, ids, table, [], offsets=False))
    finally:
        sys.setswitchinterval(interval)
    assert len(result[4]) == 4 * (tokens + 1)  # every token boundary is a cut point
    assert runs >= RAN_DURING, f"another thread ran Python only {runs} times while the alignment ran"


@functools.cache
def _words() -> str:
    return " ".join("".join(random.Random(i).choices("etaoinshrdlu", k=6)) for i in range(300_000))  # ~2 MB


@pytest.mark.parametrize(
    "kind, call, reference",
    [
        pytest.param("encode", lambda enc: enc.encode_ordinary(_words()), lambda ref: ref.encode_ordinary(_words()), id="encode"),
        pytest.param("count", lambda enc: enc.count(_words()), lambda ref: len(ref.encode_ordinary(_words())), id="count"),
        # big texts between special tokens
        pytest.param("special tokens",
                     lambda enc: enc.encode(f"<|endoftext|>{_words()}<|endoftext|>{_words()[:70_000]}", allowed_special="all"),
                     lambda ref: ref.encode(f"<|endoftext|>{_words()}<|endoftext|>{_words()[:70_000]}", allowed_special="all"),
                     id="special tokens"),
    ],
)
def test_a_big_text_is_encoded_without_taking_the_gil_back(kind, call, reference):
    """A big text (>= 64 KiB) is split and merged with the GIL released from start to end, not taken back
    once per window of the text. Observed through CPython's switch interval: while this thread runs Python
    all the time, the big call gets the GIL back only by asking for it and waiting one interval (0.2 s
    here), so N takings cost it at least N intervals whatever the machine's speed. Released throughout, it
    takes the GIL back once, to return; the ~2 MB here would take it ~30 times if its pieces were emitted
    with the GIL, 64 KiB at a time (as they were: in a server worker the low-priority bulk lane held the
    GIL that way). The bound allows 5 takings and 3x the call's time alone, so load does not trip it."""
    enc = tokend.get_encoding("cl100k_base")
    started = time.perf_counter()
    call(enc)  # alone (and the text's first pass: loads, caches)
    alone = time.perf_counter() - started
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.2)
    inside, returned = threading.Event(), threading.Event()
    result: list[object] = []

    def run() -> None:
        inside.set()
        began = time.perf_counter()
        try:
            result.append(call(enc))
            result.append(time.perf_counter() - began)
        finally:
            returned.set()  # also when the call raises: the loop below must end

    try:
        thread = threading.Thread(target=run)
        thread.start()
        inside.wait()
        while not returned.is_set():  # Python all the time: the big call waits an interval per GIL taking
            pass
        thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(result) == 2, "the big call raised (its traceback is above)"
    ids, elapsed = result
    assert ids == reference(tiktoken.get_encoding("cl100k_base"))
    assert elapsed < 3 * alone + 5 * 0.2, (
        f"{kind}: {elapsed:.2f} s beside a busy thread against {alone:.2f} s alone: the call took the GIL back "
        f"~{(elapsed - alone) / 0.2:.0f} times")
