"""The regex fallback's slow splits go on on the request's runner (engine/regex_splitter: RegexTime.runner,
INLINE_SECONDS): the service gives its low-priority regex lane, so a model whose split pattern backtracks
spends its time where small calls do not wait for it. In-process, with a runner that runs its work on
another thread: which calls hop, that their answers are the ones the caller's thread gives, and that the
time bound and the characters charged are the same as without a hop."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.engine import regex_splitter
from tokend.engine.regex_splitter import BASE_SECONDS, SECONDS_PER_CHAR, compile_regex_splitter, shared_regex_time
from tokend.errors import ModelFormatError

# A backreference: outside the native subset; the first alternative backtracks at every "a" of a run before
# "." takes it (exponential in the run's length).
PATTERN = r"(a|aa)+\1b|\s+|."


class OtherThread:
    """A runner: each fn on a new thread; records how many ran and the CPU time they took there."""

    def __init__(self) -> None:
        self.calls = 0
        self.cpu = 0.0

    def __call__(self, fn):
        result: dict = {}

        def run() -> None:
            started = time.thread_time()
            try:
                result["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as the lane does
                result["error"] = exc
            finally:
                self.cpu += time.thread_time() - started

        self.calls += 1
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        if "error" in result:
            raise result["error"]
        return result["value"]


def test_splits_that_are_fast_stay_on_the_callers_thread(monkeypatch):
    # "Fast" against an inline attempt a preempted thread cannot outlast: the regex module's timeout is wall time,
    # and at the module's 2 ms one split of 300 hopped on a loaded CI machine (the mechanism, not the budget, is
    # what this test is about; the backtracking tests below keep the module's budget).
    monkeypatch.setattr(regex_splitter, "INLINE_SECONDS", 0.25)  # below BASE_SECONDS: the inline attempt runs
    splitter = compile_regex_splitter(r"(?<=\s)\w+|\s+|.")
    runner = OtherThread()
    texts = [f"text number {index} with a few words, and punctuation!" * 20 for index in range(300)]
    with shared_regex_time(runner=runner):
        pieces = [splitter.split_isolated(text) for text in texts]
    assert runner.calls == 0
    assert pieces == [splitter.split_isolated(text) for text in texts]


def test_a_split_that_backtracks_goes_on_on_the_runner_with_the_same_answer():
    splitter = compile_regex_splitter(PATTERN)
    text = " ".join(["a" * 22 + "c"] * 4)  # a few tens of ms of backtracking, within the bound
    expected = splitter.split_isolated(text)  # no shared time: on this thread to the end
    runner = OtherThread()
    with shared_regex_time(runner=runner) as shared:
        started = time.thread_time()
        pieces = splitter.split_isolated(text)
        here = time.thread_time() - started
    assert pieces == expected
    assert runner.calls == 1
    # The caller's thread spent the inline attempt (2 ms of the module's clock) and the hand-over; the rest
    # ran on the runner's thread, and all of it is charged to the request.
    assert runner.cpu > 5 * here, (runner.cpu, here)
    assert shared.spent >= runner.cpu
    assert shared.chars == len(text)


def test_the_bound_holds_across_the_hop():
    splitter = compile_regex_splitter(PATTERN)
    text = "a" * 41 + "c"  # minutes of backtracking without the bound
    runner = OtherThread()
    with shared_regex_time(runner=runner) as shared:
        with pytest.raises(ModelFormatError, match="took longer than"):
            splitter.split_isolated(text)
    bound = BASE_SECONDS + SECONDS_PER_CHAR * len(text)
    assert runner.calls == 1
    assert shared.chars == len(text)  # charged once, not once per attempt
    # the module stops a call on its process's CPU clock, the charge is the threads' own: never more than
    # the bound plus the hand-over (a second attempt with a fresh bound would spend it twice)
    assert shared.spent <= bound + 0.1, shared.spent


def test_a_runners_error_reaches_the_caller():
    splitter = compile_regex_splitter(PATTERN)

    class Busy(Exception):
        pass

    def refuse(fn):
        raise Busy("the lane is full")

    with shared_regex_time(runner=refuse):
        with pytest.raises(Busy):
            splitter.split_isolated("a" * 30 + "c")
        assert splitter.split_isolated("b c") == ["b", " ", "c"]  # fast: never offered to the runner
