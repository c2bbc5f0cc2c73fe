"""One big encode does not stall the other threads of the process (a server worker's other calls): the
native core merges long pieces without the GIL and lets waiting threads run between pieces of big texts.
With the GIL held for the whole call, no other thread could run Python while it runs.

Counted, not timed: the big call runs in a thread; this thread sleeps 1 ms at a time and counts how often it
ran Python while the call was in progress. Holding the GIL for the whole call, the count is at most 1 (the
moment between the call's return and its flag), whatever the machine's load: this thread can only run when
the call lets it. Releasing it, this thread gets in at every wake-up (merges without the GIL) or at the
next yield once it has asked for the GIL for a switch interval (CPython then hands over before the yielder
may continue), so a call lasting tens of milliseconds gives many. How many per second is a figure of the
service benchmark (docs/bench-service.md), not of this test.
"""

from __future__ import annotations

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
)
def test_other_threads_run_during_a_big_encode(kind, text):
    runs, ids = _runs_during(lambda enc: enc.encode_ordinary(text))
    assert ids == tiktoken.get_encoding("cl100k_base").encode(text)
    assert runs >= RAN_DURING, f"{kind}: another thread ran Python only {runs} times while the big encode ran"


def test_other_threads_run_during_a_big_alignment():
    """The offsets/cut-point walk (engine/_alignment) holds the GIL but hands it over once per two switch
    intervals. A 1 ms interval here (the walk reads it per call) gives ~15 hand-overs in a ~40 ms walk."""
    from tokend.engine._alignment import align

    tokens = 4_000_000
    text, ids, table = "a" * tokens, [0] * tokens, [b"a"]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    try:
        runs, result = _runs_during(lambda enc: align(text, ids, table, [], offsets=False))
    finally:
        sys.setswitchinterval(interval)
    assert len(result[4]) == 4 * (tokens + 1)  # every token boundary is a cut point
    assert runs >= RAN_DURING, f"another thread ran Python only {runs} times while the alignment ran"
