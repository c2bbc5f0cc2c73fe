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


def _order_of_turns(turns, accounts=None) -> list[int]:
    """Three threads queue for ``turns`` (held by the caller) in index order, with ``accounts[index]`` when
    given; the caller gives the turn back: the order in which they got it."""
    order: list[int] = []
    threads = []
    for index in range(3):
        def wait_turn(index: int = index) -> None:
            account = {} if accounts is None else {"account": accounts[index]}
            assert turns.take(deadline=_soon(), **account)
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
    return order


def test_the_turn_goes_to_waiting_threads_first_come_first_served():
    turns = RenderTurns()
    assert turns.take(deadline=_soon())
    assert _order_of_turns(turns) == [0, 1, 2]
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
    take turns, each many times; and a short render started among them ends before any of them does. (The
    spinners spin until let go once each has had its turn five times: turns counted within a time limit are as
    few as a loaded machine leaves room for.)"""
    from tokend.registry.chat import template_budget

    spin, short = compile_template(_HELD_SPIN), compile_template("{% for i in range(200) %}{{ i }}{% endfor %}")
    ticks: list[tuple[int, bool]] = []  # (thread, whether it held the turn)
    tick = template_budget.RenderBudget.tick

    def recorded_tick(self) -> None:
        ticks.append((threading.get_ident(), RENDER_TURNS._owner == threading.get_ident()))
        tick(self)

    monkeypatch.setattr(template_budget.RenderBudget, "tick", recorded_tick)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    outcomes: list[str] = []
    release: list[int] = []
    started = threading.Barrier(4)

    spinning: set[int] = set()

    def runs() -> list[int]:  # the spinners' turns: a new run where another spinner ticked before
        spinner_ticks = [ident for ident, _ in list(ticks) if ident in spinning]
        return [ident for index, ident in enumerate(spinner_ticks) if index == 0 or spinner_ticks[index - 1] != ident]

    def spin_until_released() -> None:
        spinning.add(threading.get_ident())
        started.wait()
        with pytest.raises(ChatTemplateError) as caught:
            render_template(spin, {"release": release}, TemplateLimits(seconds=60.0))
        outcomes.append(caught.value.reason)

    spinners = [threading.Thread(target=spin_until_released) for _ in range(3)]
    try:
        for thread in spinners:
            thread.start()
        started.wait()
        _wait_until(lambda: set(runs()) == spinning)  # every spinner has had the turn
        assert render_template(short, {}, TemplateLimits(seconds=60.0)) == "".join(map(str, range(200)))
        short_passed = not outcomes  # every spinner still running
        _wait_until(lambda: all(runs().count(ident) >= 5 for ident in spinning))
    finally:
        release.append(1)
        for thread in spinners:
            thread.join(30)
        sys.setswitchinterval(switch)
    assert outcomes == ["raised"] * 3  # each spun until let go
    assert short_passed
    assert all(held for _, held in ticks), sum(not held for _, held in ticks)  # side by side: most were not
    assert all(runs().count(ident) >= 5 for ident in spinning), [runs().count(ident) for ident in spinning]


def _wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within 30 s"
        time.sleep(0.001)


# A render that spins until the test lets it go (`release` non-empty), ticking all the while.
_HELD_SPIN = ("{% for i in range(100000) %}{% for j in range(100000) %}{% if release|length %}{{ raise_exception('released') }}"
              "{% endif %}{% endfor %}{% endfor %}")


def _spinning_render(release: list, outcome: list) -> threading.Thread:
    spin = compile_template(_HELD_SPIN)

    def run() -> None:
        try:
            render_template(spin, {"release": release}, TemplateLimits(seconds=60.0))
        except ChatTemplateError as error:
            outcome.append(error.reason)  # "raised": spun until released

    thread = threading.Thread(target=run)
    thread.start()
    while RENDER_TURNS._owner is None:  # it holds the turn
        time.sleep(0.001)
    return thread


def _recording_waits(monkeypatch) -> list[int]:
    """The threads that queued for the turn, one entry a wait."""
    from tokend.registry.chat import render_turns

    waits: list[int] = []

    class RecordedWaiter(render_turns._Waiter):
        __slots__ = ()

        def __init__(self) -> None:
            waits.append(threading.get_ident())
            super().__init__()

    monkeypatch.setattr(render_turns, "_Waiter", RecordedWaiter)
    return waits


def test_a_conversations_renders_take_the_turn_once_not_once_a_message(monkeypatch):
    """Per-message spans render every prefix of the conversation: 201 renders for 200 messages with tools. Taken
    per render, the turn made the conversation queue behind a spinning render 201 times, a slice each
    (100 messages beside 4 spinning renders: 90 -> 890 ms, then past the 1 s template limit). Its renders
    take it as one: it queues about once for each slice it holds (here 100 ms slices for ~40 ms of renders)."""
    from tokend.registry.chat.chat_format import RenderContext
    from tokend.registry.chat.messages import parse_messages, parse_tools
    from tokend.registry.chat.template_format import TemplateChatFormat

    # 100 ms slices: the count of waits is the conversation's wall time over the slice, which a loaded machine
    # stretches (20 ms slices: 152 waits with the clock at 10x); ~1 wait here, and under 50 unless the process
    # gets less than a hundredth of a core
    monkeypatch.setattr(RENDER_TURNS, "slice_seconds", 0.1)
    chat_format = TemplateChatFormat(
        "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    messages = parse_messages([{"role": ("user", "assistant")[k % 2], "content": f"message {k}"} for k in range(200)])
    tools = parse_tools([{"type": "function", "function": {"name": "f", "parameters": {}}}])
    context = RenderContext(frozenset(), True, TemplateLimits(seconds=60.0))
    waits = _recording_waits(monkeypatch)
    release: list[int] = []
    outcome: list[str] = []
    spinner = _spinning_render(release, outcome)
    try:
        rendered = chat_format.render(messages, tools, True, context)
    finally:
        release.append(1)
        spinner.join(30)
    assert outcome == ["raised"]  # it spun beside the conversation all along
    assert rendered.message_count == 200 and rendered.spans_exact
    mine = waits.count(threading.get_ident())
    assert 1 <= mine <= 50, mine  # was 201: once a render
    assert RENDER_TURNS._owner is None


@pytest.mark.parametrize(
    "name, source",
    [
        ("title", "{{ (text|title)|length > 0 }}{% for i in range(3000) %}{% endfor %}{{ text[:3] }}"),
        # a lazy value (a generator) to sort: read first, then sorted without the turn
        ("sort", "{{ (text|map('upper'))|sort|length > 0 }}{% for i in range(3000) %}{% endfor %}{{ text[:3] }}"),
    ],
)
def test_a_long_filter_step_runs_without_the_turn(monkeypatch, name, source):
    """One filter call over a long value has no hook inside (`urlize` of 256 Ki characters: ~0.3 s, a `sort` of
    256 Ki strings 0.5-0.9 s), so it cannot pass the turn on midway: it runs without it, and a waiting render
    takes the turn meanwhile (before, three renders looping over such calls kept a 50-item render waiting
    260-920 ms). Its render takes the turn again after, and goes on."""
    import jinja2.filters

    from tokend.registry.chat import sandbox

    taken_meanwhile: list[bool] = []
    function = {"title": jinja2.filters.do_title, "sort": jinja2.filters.do_sort}[name]

    def slow(*args, **kwargs):  # a long call: here until another render had the turn (or 5 s)
        def other_render() -> None:
            taken_meanwhile.append(RENDER_TURNS.take(deadline=_soon(5.0)))
            RENDER_TURNS.give_back()

        other = threading.Thread(target=other_render)
        other.start()
        other.join(10)
        return function(*args, **kwargs)

    if hasattr(function, "jinja_pass_arg"):  # sort takes the environment first
        slow.jinja_pass_arg = function.jinja_pass_arg
    long_text = "see https://example.com " * 1000  # past ASIDE_MIN_LENGTH
    monkeypatch.setitem(sandbox._ENVIRONMENT.filters, name, sandbox.bounded_filter(name, slow))
    assert render_template(compile_template(source), {"text": long_text}, TemplateLimits(seconds=30.0)) == "Truesee"
    assert taken_meanwhile == [True]
    assert RENDER_TURNS._owner is None


def test_a_conversations_renders_pass_the_turn_on_when_their_slice_is_over(monkeypatch):
    """Held as one for a conversation's renders, the turn is still passed on after each slice (the slice is the
    holder's, not each render's: renders shorter than a slice do not keep it for ever)."""
    from tokend.registry.chat.sandbox import renders_in_turn

    monkeypatch.setattr(RENDER_TURNS, "slice_seconds", 0.0)
    order: list[str] = []
    limits = TemplateLimits(seconds=30.0).start()
    with renders_in_turn(limits):
        def other_render() -> None:
            RENDER_TURNS.take(deadline=_soon())
            order.append("other")
            RENDER_TURNS.give_back()

        other = threading.Thread(target=other_render)
        other.start()
        while RENDER_TURNS.waiting < 1:
            time.sleep(0.001)
        assert render_template(compile_template("{{ 1 }}"), {}, limits) == "1"  # passes it on as it starts
        order.append("conversation")
        assert RENDER_TURNS._owner == threading.get_ident()  # and has it back, at the conversation's depth
    other.join(10)
    assert order == ["other", "conversation"]
    assert RENDER_TURNS._owner is None


def test_an_exception_raised_into_a_wait_leaves_no_waiter_behind(monkeypatch):
    """An exception raised while a render waits (KeyboardInterrupt in a main thread) takes its waiter out of the
    queue: before, the turn was later handed to that waiter, whom nobody waited on, and no render got it again."""
    from tokend.registry.chat import render_turns

    class InterruptedEvent:
        def __init__(self) -> None:
            self.flag = threading.Event()

        def set(self) -> None:
            self.flag.set()

        def wait(self, timeout: float | None = None) -> bool:
            raise KeyboardInterrupt

    class InterruptedWaiter(render_turns._Waiter):
        __slots__ = ()

        def __init__(self) -> None:
            super().__init__()
            self.event = InterruptedEvent()

    turns = RenderTurns()
    assert turns.take(deadline=_soon())
    raised: list[str] = []

    def interrupted() -> None:
        try:
            turns.take(deadline=_soon())
        except KeyboardInterrupt:
            raised.append("interrupted")

    monkeypatch.setattr(render_turns, "_Waiter", InterruptedWaiter)
    thread = threading.Thread(target=interrupted)
    thread.start()
    thread.join(10)
    monkeypatch.undo()
    assert raised == ["interrupted"] and turns.waiting == 0
    turns.give_back()
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(turns.take(deadline=time.monotonic() + 0.5)))
    thread.start()
    thread.join(10)
    assert outcome == [True]  # the turn is free, not handed to the interrupted waiter


def test_a_render_whose_call_went_away_stops_running_and_waiting():
    """A cancelled call's render stops at its next hook, and one waiting for the turn leaves the queue: before,
    both went on to their time limit, the running one taking turns from every other render meanwhile."""
    from tokend.engine.call_stop import CallStop, CallStopped, stop_at

    spin = compile_template(SPIN)
    outcomes: dict[str, BaseException] = {}

    def render(name: str, stop: CallStop, seconds: float) -> None:
        with stop_at(stop):
            try:
                render_template(spin, {}, TemplateLimits(seconds=seconds))
            except BaseException as error:  # noqa: BLE001 - the kind is what is checked
                outcomes[name] = error

    holder_stop, waiter_stop = CallStop(), CallStop()
    holder = threading.Thread(target=render, args=("holder", holder_stop, 30.0))
    holder.start()
    while RENDER_TURNS._owner is None:  # the holder has the turn
        time.sleep(0.001)
    waiter = threading.Thread(target=render, args=("waiter", waiter_stop, 30.0))
    waiter.start()
    while RENDER_TURNS.waiting == 0:
        time.sleep(0.001)
    waiter_stop.cancel()
    waiter.join(10)
    assert not waiter.is_alive() and isinstance(outcomes["waiter"], CallStopped), outcomes
    assert holder.is_alive() and RENDER_TURNS.waiting == 0  # the waiter left the queue; the holder spins on
    holder_stop.cancel()
    holder.join(10)
    assert not holder.is_alive() and isinstance(outcomes["holder"], CallStopped), outcomes
    assert RENDER_TURNS.take(deadline=_soon(1.0))  # the turn is free again
    RENDER_TURNS.give_back()


def test_the_turn_goes_to_the_waiter_whose_account_held_it_least():
    """Least held first: a request that has held the turn little goes before those that held it long, whatever
    the order they queued in; first come, first served among equals."""
    from tokend.registry.chat.render_turns import TurnAccount

    turns = RenderTurns()
    assert turns.take(deadline=_soon())
    accounts = [TurnAccount() for _ in range(3)]
    accounts[0].held, accounts[1].held, accounts[2].held = 0.5, 0.01, 0.5
    assert _order_of_turns(turns, accounts) == [1, 0, 2]


def test_a_holder_keeps_the_turn_past_its_slice_while_every_waiter_held_it_longer():
    from tokend.registry.chat.render_turns import TurnAccount

    turns = RenderTurns()
    turns.slice_seconds = 0.0
    mine, theirs = TurnAccount(), TurnAccount()
    theirs.held = 60.0
    assert turns.take(deadline=_soon(), account=mine)
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: (outcome.append(turns.take(deadline=_soon(), account=theirs)), turns.give_back()))
    thread.start()
    while turns.waiting < 1:
        time.sleep(0.001)
    time.sleep(0.01)
    assert turns.due(time.monotonic())
    assert turns.pass_on(deadline=_soon()) and turns._owner == threading.get_ident() and turns.waiting == 1  # kept
    assert 0.01 <= mine.held < 60.0  # charged so far
    theirs.held = 0.0
    assert turns.pass_on(deadline=_soon())  # now the waiter has held less: it goes first, and we come back after
    thread.join(10)
    assert outcome == [True] and turns._owner == threading.get_ident()
    turns.give_back()
    assert turns._owner is None


def test_a_long_conversation_goes_before_spinning_renders_that_held_the_turn_longer(monkeypatch):
    """A conversation with tools and per-message spans is ~30 renders (the whole, and every prefix) held as one.
    Queued first come, first served behind three spinning renders, it waited a slice of each of them every
    time its slice ended: a 64-message Qwen3 chat with a tool (~50 ms alone) beside 7 spinning renders took
    447 ms in-process (1,000 ms, failed, when it queued once a render). Now the turn goes to it before the
    spinners, whose requests have held it longer, at the holder's next slice: no spinner's turn comes between
    its queueing and its turn, and it keeps the turn past its slices while they wait."""
    from tokend import get_encoding
    from tokend.registry.chat import render_turns
    from tokend.registry.chat.chat_format import ChatEncoder
    from tokend.registry.chat.template_format import TemplateChatFormat
    from tokend.registry.chat.template_limits import TemplateClock

    log: list[tuple[str, int]] = []  # ("queued" | "granted", thread)

    class LoggedWaiter(render_turns._Waiter):
        __slots__ = ("thread", "_granted")

        def __init__(self) -> None:
            self.thread = threading.get_ident()
            super().__init__()
            log.append(("queued", self.thread))

        @property
        def granted(self) -> bool:
            return self._granted

        @granted.setter
        def granted(self, value: bool) -> None:
            self._granted = value
            if value:
                log.append(("granted", self.thread))

    monkeypatch.setattr(render_turns, "_Waiter", LoggedWaiter)
    chat_format = TemplateChatFormat(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if tools %}{{ tools|tojson }}{% endif %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    chat_format.layouts.enabled = False  # rendered in full, every prefix too (a layout would not render them)
    encoder = ChatEncoder(get_encoding("cl100k_base"), chat_format)
    messages = [{"role": "user" if k % 2 == 0 else "assistant", "content": f"turn {k}"} for k in range(30)]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    release: list[int] = []
    outcomes: list[str] = []
    spin = compile_template(_HELD_SPIN)
    started = threading.Barrier(4)

    def spin_until_released() -> None:
        started.wait()
        try:
            render_template(spin, {"release": release}, TemplateLimits(seconds=60.0, clock=TemplateClock()))
        except ChatTemplateError as error:
            outcomes.append(error.reason)

    spinners = [threading.Thread(target=spin_until_released) for _ in range(3)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        for thread in spinners:
            thread.start()
        started.wait()
        time.sleep(0.3)  # every spinner has held the turn a while, and they take turns
        me = threading.get_ident()
        first = len(log)
        counted = encoder.count_chat(messages, tools, True, limits=TemplateLimits(seconds=30.0, clock=TemplateClock()))
        mine = log[first:]
    finally:
        release.append(1)
        for thread in spinners:
            thread.join(30)
        sys.setswitchinterval(switch)
    assert outcomes == ["raised"] * 3  # they spun beside the conversation all along
    assert len(counted.per_message) == 30
    waits = [index for index, (event, thread) in enumerate(mine) if event == "queued" and thread == me]
    assert waits, "the conversation never waited: the spinners did not hold the turn"
    for index in waits:  # granted to it next, whichever spinners queued before it
        grants = [thread for event, thread in mine[index:] if event == "granted"]
        assert grants[0] == me, (index, mine[index:index + 8])
    assert len(waits) <= 3, len(waits)  # it keeps the turn while they wait: it does not queue a slice at a time
    assert RENDER_TURNS._owner is None and RENDER_TURNS.calls == 0


def test_calls_past_the_cap_are_refused_at_once_and_every_ending_frees_its_place(monkeypatch):
    """Each call waiting for the turn holds one of its worker's handler threads: 8 spinning template calls held
    every thread of a worker, and a CountTokens waited for one. At most `max_calls` calls render at once; one
    more is refused at once ("busy"), and a call's place is freed however its render ends (done, refused by
    the template, past its time waiting, cancelled)."""
    from tokend.engine.call_stop import CallStop, CallStopped, stop_at
    from tokend.registry.chat.sandbox import renders_in_turn
    from tokend.registry.chat.template_limits import TemplateClock

    monkeypatch.setattr(RENDER_TURNS, "max_calls", 2)
    release: list[int] = []
    outcome: list[str] = []
    holder = _spinning_render(release, outcome)
    waited: list[str] = []

    def wait_past_its_time() -> None:  # queues behind the holder, and gives up at its 0.3 s
        clock = TemplateClock()
        clock.turn.held = 3600.0  # its request has held the turn longer than the holder's: it waits
        try:
            render_template(compile_template("{{ 1 }}"), {}, TemplateLimits(seconds=0.3, clock=clock))
        except ChatTemplateError as error:
            waited.append(error.reason)

    waiter = threading.Thread(target=wait_past_its_time)
    try:
        waiter.start()
        while RENDER_TURNS.waiting < 1:
            time.sleep(0.001)
        assert RENDER_TURNS.calls == 2
        started = time.monotonic()
        with pytest.raises(ChatTemplateError) as refused:
            render_template(compile_template("{{ 1 }}"), {}, TemplateLimits(seconds=30.0))
        assert refused.value.reason == "busy" and "2 calls of this worker already render chat templates or wait to" in str(refused.value)
        assert time.monotonic() - started < 5  # at once, not after a wait (generous for shared cores)
        with pytest.raises(ChatTemplateError) as refused:  # a conversation's renders are refused as one
            with renders_in_turn(TemplateLimits(seconds=30.0).start()):
                pass
        assert refused.value.reason == "busy"
        waiter.join(10)
        assert waited == ["time_limit"] and RENDER_TURNS.calls == 1  # the waiter's place is free again
        stop = CallStop()
        stopped: list[BaseException] = []

        def cancelled_while_waiting() -> None:
            clock = TemplateClock()
            clock.turn.held = 3600.0
            with stop_at(stop):
                try:
                    render_template(compile_template("{{ 1 }}"), {}, TemplateLimits(seconds=30.0, clock=clock))
                except BaseException as error:  # noqa: BLE001 - the kind is what is checked
                    stopped.append(error)

        cancelled = threading.Thread(target=cancelled_while_waiting)
        cancelled.start()
        while RENDER_TURNS.waiting < 1:
            time.sleep(0.001)
        stop.cancel()
        cancelled.join(10)
        assert isinstance(stopped[0], CallStopped) and RENDER_TURNS.calls == 1
    finally:
        release.append(1)
        holder.join(30)
    assert outcome == ["raised"]  # refused by its own template: its place is free too
    assert RENDER_TURNS.calls == 0 and RENDER_TURNS._owner is None
    assert render_template(compile_template("{{ 2 }}"), {}, TemplateLimits(seconds=5.0)) == "2"


def test_a_call_that_has_not_started_waits_for_a_place_among_those_that_have(monkeypatch):
    """At most `max_started` calls have started rendering (each may hold template values up to its own limit);
    another waits before its first turn, holding nothing, and starts as soon as one of them leaves (even
    though, having held nothing, it would have had the turn at the holder's next slice)."""
    monkeypatch.setattr(RENDER_TURNS, "max_started", 1)
    release: list[int] = []
    outcome: list[str] = []
    holder = _spinning_render(release, outcome)
    rendered: list[str] = []
    second = threading.Thread(target=lambda: rendered.append(render_template(compile_template("{{ 2 }}"), {}, TemplateLimits(seconds=30.0))))
    try:
        second.start()
        while RENDER_TURNS.waiting < 1:
            time.sleep(0.001)
        time.sleep(0.1)  # ~50 of the holder's slices
        assert rendered == [] and RENDER_TURNS.calls == 2 and RENDER_TURNS.waiting == 1
    finally:
        release.append(1)
        holder.join(30)
    second.join(10)
    assert outcome == ["raised"] and rendered == ["2"]
    assert RENDER_TURNS.calls == 0 and RENDER_TURNS._started == 0 and RENDER_TURNS._owner is None
