"""A chat template's time (template_limits, template_budget): the CPU time its renders spend, their waits for
the render turn, and their wall time, each bounded, each named in the error; the CPU clock read rarely."""

from __future__ import annotations

import threading
import time

import pytest

from tokend.errors import ChatTemplateError
from tokend.registry.chat import template_budget
from tokend.registry.chat.render_turns import RENDER_TURNS
from tokend.registry.chat.sandbox import TemplateLimits, compile_template, render_template, renders_in_turn

# A render that calls `stall()` (a test's callable: the template reaches it through the sandbox's `call`)
# waits there without using CPU, as a render the machine or the worker's other threads keep off the CPU.
STALLS = compile_template("{% for i in range(count) %}{{ stall() }}{% endfor %}done")


def _stall(seconds: float):
    def stall() -> str:
        time.sleep(seconds)
        return ""

    return stall


def test_a_render_kept_off_the_cpu_past_its_seconds_is_answered():
    """0.6 s of wall time, ~no CPU, against 0.3 s: the bound is CPU time (a wall-clock 0.3 s refused it)."""
    started = time.monotonic()
    text = render_template(STALLS, {"count": 3, "stall": _stall(0.2)}, TemplateLimits(seconds=0.3))
    assert text == "done" and time.monotonic() - started >= 0.6


def test_a_render_kept_off_the_cpu_stops_at_its_wall_clock_bound():
    """However little CPU it uses, a render ends at its wall-clock bound: `wall_seconds`, or WALL_TIME_FACTOR ×
    `seconds` unset, or the call's deadline when sooner; the message says which bound, and that the CPU time
    was not what ran out."""
    cases = [
        (lambda: TemplateLimits(seconds=30.0, wall_seconds=0.5), 0.5, "ran longer than 30 s: 0.5 s of wall time"),
        (lambda: TemplateLimits(seconds=0.2), 0.8, "ran longer than 0.2 s: 0.8 s of wall time"),
        (lambda: TemplateLimits(seconds=30.0, hard_deadline=time.monotonic() + 0.5), 0.5,
         "did not finish before the call's deadline"),
    ]
    for limits, wall, message in cases:
        started = time.monotonic()
        with pytest.raises(ChatTemplateError) as caught:
            render_template(STALLS, {"count": 100_000, "stall": _stall(0.01)}, limits())
        stopped = time.monotonic() - started
        assert caught.value.reason == "time_limit"
        assert message in str(caught.value), caught.value
        assert wall - 0.1 <= stopped < wall + 5.0


def test_a_render_that_spins_stops_at_its_cpu_time():
    cpu = time.thread_time()
    with pytest.raises(ChatTemplateError) as caught:
        render_template(compile_template("{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}"), {},
                        TemplateLimits(seconds=0.2, wall_seconds=60.0))
    assert "ran longer than 0.2 s (of CPU time)" in str(caught.value)
    assert 0.2 <= time.thread_time() - cpu < 2.0


def test_the_renders_of_a_conversation_share_their_cpu_time():
    """The whole and every prefix of a conversation (started limits) spend one `seconds` of CPU between them."""
    spin_a_while = compile_template("{% for i in range(200) %}{% for j in range(1000) %}{{ j }}{% endfor %}{% endfor %}")
    times = []
    for _ in range(3):
        started = time.thread_time()
        render_template(spin_a_while, {}, TemplateLimits(seconds=60.0))
        times.append(time.thread_time() - started)
    limits = TemplateLimits(seconds=1.5 * sorted(times)[1], wall_seconds=600.0).start()
    render_template(spin_a_while, {}, limits)  # alone within its seconds, as the first render
    with pytest.raises(ChatTemplateError, match="of CPU time"):
        render_template(spin_a_while, {}, limits)  # a second one would take it to ~2 × one


def test_a_render_waiting_for_the_turn_stops_after_seconds_of_waiting_in_all():
    """Waiting for other renders' turns is not work, so not CPU time; it is bounded apart: `seconds` of waits in
    all for a conversation's renders, whatever is left of its CPU time, the message saying so."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        RENDER_TURNS.take(deadline=time.monotonic() + 30)
        held.set()
        release.wait(30)
        RENDER_TURNS.give_back()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        held.wait(10)
        limits = TemplateLimits(seconds=0.3, wall_seconds=60.0).start()
        started = time.monotonic()
        with pytest.raises(ChatTemplateError) as caught:
            render_template(compile_template("x"), {}, limits)
        assert caught.value.reason == "time_limit"
        assert "waited longer than 0.3 s in all for other chat-template renders" in str(caught.value)
        assert 0.3 <= time.monotonic() - started < 5.0
        assert limits.render_time.waited >= 0.3
        with pytest.raises(ChatTemplateError, match="waited longer than 0.3 s"):  # its waits spent: at once
            with renders_in_turn(limits):
                pass
    finally:
        release.set()
        thread.join()
    assert render_template(compile_template("x"), {}, limits) == "x"  # the turn free: no wait, still within its CPU


def test_the_cpu_clock_is_read_only_when_the_wall_clock_says_the_time_could_be_spent(monkeypatch):
    """`tick` runs at every hook; the thread's CPU clock is a system call (~300 ns against ~50 ns for the wall
    clock), read at a hook only once the wall time since the render's start reaches the CPU time it had left."""
    reads = []

    class CountedClocks:
        monotonic = staticmethod(time.monotonic)

        @staticmethod
        def thread_time() -> float:
            reads.append(1)
            return time.thread_time()

    monkeypatch.setattr(template_budget, "time", CountedClocks)
    source = compile_template("{% for i in range(20000) %}{{ i ~ '' }}{% endfor %}")
    assert render_template(source, {}, TemplateLimits(seconds=60.0)).endswith("19999")
    assert len(reads) <= 2, len(reads)  # its start (and the sandbox's own reads are not these)
