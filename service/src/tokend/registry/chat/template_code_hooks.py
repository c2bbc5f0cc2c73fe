"""The hooks a chat template's compiled code gets beyond those Jinja's sandbox routes through Python: the
places a template builds or walks values without an attribute access, call, filter or operator.

- `SizedLiterals`, the code generator: every list, tuple and dict literal is sized as it is built
  (`environment.sized(...)`), so `[x, x]` nested forty deep is refused, not printed or compared; and every
  `{% for %}`'s iterable is read through `iterated` (`environment.iterated(...)`);
- `iterated` / `CheckedLoopContext`: a loop's iterable checks the deadline every LOOP_TICK_ITEMS items
  (recursive loops' `loop(children)` too), so nested loops with empty bodies stop;
- `bounded_join` (the environment's `concat`: block `set`, macro bodies, captured output) and
  `bounded_str_join` / `bounded_markup_join` (what `~` compiles to): sized before they join, the result
  checked after.
sandbox.compile_template installs them; each needs a render's budget (template_budget):

    >>> from tokend.registry.chat.sandbox import compile_template, render_template, TemplateLimits
    >>> render_template(compile_template("{{ [1, 2] ~ 'a' }}{% for c in 'xy' %}{{ c }}{% endfor %}"), {}, TemplateLimits())
    '[1, 2]axy'
"""

from __future__ import annotations

from types import GeneratorType
from typing import Any

import jinja2.nodes
import jinja2.runtime
from jinja2.compiler import CodeGenerator, Frame

from tokend.registry.chat.message_positions import MessageLoop
from tokend.registry.chat.template_budget import LOOP_TICK_ITEMS, current_budget, ticking
from tokend.registry.chat.template_sizes import check_built, check_value, estimate

__all__ = ["CheckedLoopContext", "RecordingLoopContext", "SizedLiterals", "bounded_join", "bounded_markup_join", "bounded_str_join", "iterated"]


class SizedLiterals(CodeGenerator):
    """Builds every list, tuple and dict literal through `environment.sized(...)`: `[x, x]` is the one way a
    template makes a value without a hook (`{% set ns.x = [ns.x, ns.x] %}` forty times prints 2**40 copies,
    and `==` of two such values compares them all)."""

    def _sized(self, visit: Any, node: jinja2.nodes.Expr, frame: Frame) -> None:
        self.write("environment.sized(")
        visit(self, node, frame)
        self.write(")")

    def visit_List(self, node: jinja2.nodes.List, frame: Frame) -> None:
        self._sized(CodeGenerator.visit_List, node, frame)

    def visit_Dict(self, node: jinja2.nodes.Dict, frame: Frame) -> None:
        self._sized(CodeGenerator.visit_Dict, node, frame)

    def visit_For(self, node: jinja2.nodes.For, frame: Frame) -> None:
        # Every loop's iterable is checked as it is iterated: nested loops with empty bodies reach no other
        # hook (`{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}` over 20,000 characters ran 7.7 s).
        # (Jinja allows no new node types, so the iterable node is remembered and wrapped where it is visited.)
        iterables = self.__dict__.setdefault("_loop_iterables", set())
        iterables.add(id(node.iter))
        try:
            CodeGenerator.visit_For(self, node, frame)
        finally:
            iterables.discard(id(node.iter))

    def visit(self, node: jinja2.nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) in self.__dict__.get("_loop_iterables", ()):
            self.write("environment.iterated(")
            CodeGenerator.visit(self, node, *args, **kwargs)
            self.write(")")
            return None
        return CodeGenerator.visit(self, node, *args, **kwargs)

    def visit_Tuple(self, node: jinja2.nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":  # not the targets of `{% for a, b in ... %}`
            self._sized(CodeGenerator.visit_Tuple, node, frame)
        else:
            CodeGenerator.visit_Tuple(self, node, frame)


def iterated(iterable: Any) -> Any:
    """A loop's iterable, checking the render's deadline every LOOP_TICK_ITEMS items. A short list, tuple,
    string, dict or range (every loop of a real template) is returned as it is; a list of the chat's messages,
    in a render that records where its loops reach them (message_positions), as its recording iterator."""
    budget = current_budget()
    budget.tick()
    if budget.positions is not None and type(iterable) is list:
        loop = budget.positions.loop(iterable, budget)
        if loop is not None:
            return loop
    return _checked(iterable, budget)


def _checked(iterable: Any, budget: Any) -> Any:
    if type(iterable) in _SHORT_ITERABLES and len(iterable) < LOOP_TICK_ITEMS:
        return iterable
    if type(iterable) is GeneratorType and iterable.gi_code is ticking.__code__:
        return iterable  # already checked (the `loop` of an iterable the loop line checked)
    return ticking(iterable, budget)


_SHORT_ITERABLES = frozenset({list, tuple, str, dict, range})


class CheckedLoopContext(jinja2.runtime.LoopContext):
    """Jinja's `loop`, its iterable checked: a recursive loop's `loop(children)` reaches the loop line through
    here, not through the iterable `SizedLiterals` wraps. Over messages whose positions a render records
    (message_positions) it becomes a `RecordingLoopContext`."""

    def __init__(self, iterable: Any, undefined: Any, recurse: Any = None, depth0: int = 0) -> None:
        if type(iterable) is MessageLoop:
            # (a class change, not a `__new__`: every other loop of every render would pay for one more call)
            self.__class__ = RecordingLoopContext
            self._recorded = iterable
            iterable = _checked(iterable.items, current_budget())
        else:
            iterable = iterated(iterable)
            if type(iterable) is MessageLoop:  # a recursive loop's children that are messages: read, not recorded
                iterable = _checked(iterable.items, current_budget())
        super().__init__(iterable, undefined, recurse, depth0)


class RecordingLoopContext(CheckedLoopContext):
    """`loop` over messages whose positions a render records: it reads the list itself (it looks an item ahead
    for `loop.last` and takes `len()`) and records each item as `__next__` hands it to the loop's body. A
    subclass so that other loops' items do not pass through one more Python call."""

    _recorded: MessageLoop

    def __next__(self) -> Any:
        try:
            item = super().__next__()
        except StopIteration:
            self._recorded.end()
            raise
        self._recorded.reach()
        return item


def bounded_join(parts: Any) -> str:
    """Captured output joined (the environment's `concat`), sized before it is joined."""
    budget = current_budget()
    budget.tick()
    parts = list(parts)
    budget.size(sum(estimate(part, budget.max_chars) for part in parts), "a string")
    joined = check_built("".join(parts), "a string")
    if budget.tracer is not None:  # a captured block (`{% set %}`, macro, call, filter block) of a traced render
        return budget.tracer.captured(joined)
    return joined


def bounded_str_join(seq: Any) -> str:
    """`~` (Jinja's module-level `str_join`)."""
    budget = current_budget()
    if budget.tracer is not None:  # `~` of a traced render: traced operands stay traced
        seq = list(seq)
        joined = budget.tracer.join(seq)
        if joined is not None:
            return joined
    return bounded_join(map(str, seq))


def bounded_markup_join(seq: Any) -> str:
    """`~` with a Markup operand (Jinja's module-level `markup_join`)."""
    budget = current_budget()
    if budget.tracer is not None:
        seq = list(seq)
        joined = budget.tracer.join(seq)
        if joined is not None:
            return joined
    return check_built(jinja2.runtime.markup_join(list(map(_check_joined, seq))), "a string")


def _check_joined(value: Any) -> Any:
    current_budget().tick()
    return check_value(value, "a string")
