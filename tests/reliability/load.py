"""Load for the reliability tests: texts with tiktoken's ids, client threads that check every answer,
and the memory of server processes.

    golden = GoldenTexts.build(limit_bytes=30_000)
    load = LoadThreads(lambda thread, i: check_one(...), threads=4, requests_per_thread=500)
    load.run()                      # or start() ... stop_and_join()
    assert load.failures == []      # every answer was checked against tiktoken's ids

Bounded by construction: a LoadThreads run ends after its request count or when stopped, and every
call carries a deadline. Loopback only (the servers are started by tests/support/server.py).
"""

from __future__ import annotations

import math
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GoldenTexts", "LoadThreads", "rss_kb", "percentile"]

MODELS = ("cl100k_base", "o200k_base")


@dataclass
class GoldenTexts:
    texts: list[str]
    ids: dict[str, list[list[int]]]  # model -> ids of texts[i], from tiktoken

    @classmethod
    def build(cls, limit_bytes: int) -> GoldenTexts:
        import tiktoken

        from corpus import corpus_texts, edge_cases

        texts = [text[:2000] for text in corpus_texts(limit_bytes=limit_bytes, kinds=("english", "code", "multilingual"))]
        texts += edge_cases()
        # The default special-token policy refuses "<|...|>" text; the hostile tests cover that case.
        texts = [text for text in texts if "<|" not in text]
        ids = {model: tiktoken.get_encoding(model).encode_ordinary_batch(texts) for model in MODELS}
        return cls(texts, ids)


class LoadThreads:
    """``threads`` threads each calling ``work(thread, index)`` until ``requests_per_thread`` calls or
    ``stop()``. ``work`` raises (AssertionError for a wrong answer, the client's exception for a failed
    call) to record a failure; nothing stops the other threads."""

    def __init__(self, work: Callable[[int, int], object], *, threads: int, requests_per_thread: int | None = None) -> None:
        self._work = work
        self._threads = [threading.Thread(target=self._run, args=(number,), daemon=True) for number in range(threads)]
        self._limit = requests_per_thread
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.completed = 0
        self.failures: list[str] = []  # one line per failed call: thread, index, exception
        self.failure_kinds: Counter[str] = Counter()

    def _run(self, number: int) -> None:
        index = 0
        while not self._stop.is_set() and (self._limit is None or index < self._limit):
            try:
                self._work(number, index)
            except Exception as exc:  # recorded and reported by the test, never swallowed
                with self._lock:
                    self.failures.append(f"thread {number} call {index}: {type(exc).__name__}: {exc}")
                    self.failure_kinds[type(exc).__name__] += 1
                    if len(self.failures) == 1:
                        self.failures.append(traceback.format_exc())
            else:
                with self._lock:
                    self.completed += 1
            index += 1

    def start(self) -> LoadThreads:
        for thread in self._threads:
            thread.start()
        return self

    def wait_completed(self, count: int, timeout: float) -> None:
        """Block until ``count`` calls completed (or failed); raise TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while self.completed + len(self.failures) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.completed} calls completed in {timeout:.0f} s (wanted {count})")
            time.sleep(0.01)

    def finished(self) -> bool:
        """True once every thread has ended (its request count reached, or stopped)."""
        return not any(thread.is_alive() for thread in self._threads)

    def stop_and_join(self, timeout: float = 120.0) -> None:
        self._stop.set()
        self.join(timeout)

    def join(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            raise TimeoutError(f"load threads still running after {timeout:.0f} s: {alive}")

    def run(self, timeout: float = 300.0) -> LoadThreads:
        self.start()
        self.join(timeout)
        return self


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS line")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
