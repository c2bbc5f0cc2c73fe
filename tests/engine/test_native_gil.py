"""One big encode does not stall the other threads of the process (a server worker's other calls): the
native core merges long pieces without the GIL and lets waiting threads run between pieces of big texts.
With the GIL held for the whole call, no other thread could finish anything while it runs."""

from __future__ import annotations

import random
import string
import threading
import time

import pytest
import tiktoken

import tokend


def _small_calls_during(big_call) -> tuple[int, object]:
    enc = tokend.get_encoding("cl100k_base")
    finished: list[float] = []
    stop = threading.Event()

    def small_calls() -> None:
        while not stop.is_set():
            enc.count("a well-behaved caller's short text")
            finished.append(time.perf_counter())
            time.sleep(0.0005)

    thread = threading.Thread(target=small_calls)
    thread.start()
    time.sleep(0.05)
    started = time.perf_counter()
    result = big_call(enc)
    ended = time.perf_counter()
    stop.set()
    thread.join()
    return sum(started < moment < ended for moment in finished), result


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
    during, ids = _small_calls_during(lambda enc: enc.encode(text))
    assert ids == tiktoken.get_encoding("cl100k_base").encode(text)
    assert during >= 3, f"{kind}: only {during} small calls finished while the big encode ran"


def test_other_threads_run_during_a_big_alignment():
    """The offsets/cut-point walk (engine/_alignment) holds the GIL but yields every 65,536 tokens."""
    from tokend.engine._alignment import align

    tokens = 4_000_000
    text, ids, table = "a" * tokens, [0] * tokens, [b"a"]
    during, result = _small_calls_during(lambda enc: align(text, ids, table, [], offsets=False))
    assert len(result[4]) == 4 * (tokens + 1)  # every token boundary is a cut point
    assert during >= 3, f"only {during} small calls finished while the alignment ran"
