"""Chat-template renders of one process run one at a time, in turns (render_turns): renders side by side
only made every other thread of a worker wait longer for the GIL (issue 13's p99 under hostile templates).
"""

from __future__ import annotations

import sys
import threading
import time

import pytest

from tokend.errors import ChatTemplateError
from tokend.registry.chat.render_turns import RENDER_TURNS, RenderTurns
from tokend.registry.chat.sandbox import TemplateLimits, compile_template, render_template

SPIN = "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}"  # a tick a chunk


def _soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def test_the_turn_goes_to_waiting_threads_first_come_first_served():
    turns = RenderTurns()
    assert turns.take(deadline=_soon())
    order: list[int] = []
    threads = []
    for index in range(3):
        def wait_turn(index: int = index) -> None:
            assert turns.take(deadline=_soon())
            order.append(index)
            turns.give_back()

        thread = threading.Thread(target=wait_turn)
        thread.start()
        threads.append(thread)
        while turns.waiting < index + 1:  # queued in this order
            time.sleep(0.001)
    turns.give_back()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2]
    assert turns.take(deadline=_soon())  # free again
    turns.give_back()


def test_a_render_inside_a_render_keeps_the_turn_and_a_waiter_past_its_deadline_leaves_the_queue():
    turns = RenderTurns()
    assert turns.take(deadline=_soon()) and turns.take(deadline=_soon())  # the same thread again
    turns.give_back()
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(turns.take(deadline=time.monotonic() + 0.05)))
    thread.start()
    thread.join(10)
    assert outcome == [False]  # still held by the outer hold: the waiter gave up at its deadline
    assert turns.waiting == 0
    turns.give_back()
    thread = threading.Thread(target=lambda: outcome.append(turns.take(deadline=_soon())))
    thread.start()
    thread.join(10)
    assert outcome == [False, True]


def test_spinning_renders_take_turns_and_a_short_render_passes_them(monkeypatch):
    """Three spinning renders, the interpreter switching threads every 0.2 ms: every step of a render (each
    hook's tick) runs while that render holds the process's turn, so renders never run side by side; they
    take turns, each many times; and a short render started among them ends before any of them does."""
    from tokend.registry.chat import template_budget

    spin, short = compile_template(SPIN), compile_template("{% for i in range(200) %}{{ i }}{% endfor %}")
    ticks: list[tuple[int, bool]] = []  # (thread, whether it held the turn)
    tick = template_budget.RenderBudget.tick

    def recorded_tick(self) -> None:
        ticks.append((threading.get_ident(), RENDER_TURNS._owner == threading.get_ident()))
        tick(self)

    monkeypatch.setattr(template_budget.RenderBudget, "tick", recorded_tick)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    outcomes: list[str] = []
    started = threading.Barrier(4)

    spinning: set[int] = set()

    def spin_until_its_limit() -> None:
        spinning.add(threading.get_ident())
        started.wait()
        with pytest.raises(ChatTemplateError) as caught:
            render_template(spin, {}, TemplateLimits(seconds=1.0))
        outcomes.append(caught.value.reason)

    spinners = [threading.Thread(target=spin_until_its_limit) for _ in range(3)]
    try:
        for thread in spinners:
            thread.start()
        started.wait()
        time.sleep(0.2)
        assert render_template(short, {}, TemplateLimits(seconds=5.0)) == "".join(map(str, range(200)))
        short_passed = not outcomes  # every spinner still running
        for thread in spinners:
            thread.join(30)
    finally:
        sys.setswitchinterval(switch)
    assert outcomes == ["time_limit"] * 3
    assert short_passed
    spinner_ticks = [(ident, held) for ident, held in ticks if ident in spinning]
    assert all(held for _, held in ticks), sum(not held for _, held in ticks)  # side by side: most were not
    runs = [ident for index, (ident, _) in enumerate(spinner_ticks) if index == 0 or spinner_ticks[index - 1][0] != ident]
    assert all(runs.count(ident) >= 5 for ident in spinning), [runs.count(ident) for ident in spinning]
