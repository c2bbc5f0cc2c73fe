"""The Jinja2 sandbox chat templates run in: transformers' rendering rules, plus limits on time and size.

A chat template is code that arrives with a model (a registry is data from elsewhere), so it runs in
Jinja2's `ImmutableSandboxedEnvironment` (no attribute escapes such as `__class__`, no mutation of the
messages), configured the way transformers' `apply_chat_template` configures it (`trim_blocks`,
`lstrip_blocks`, the `loopcontrols` extension, a `{% generation %}` block that renders its body,
`raise_exception`, `strftime_now`, and its `tojson`), so a template renders the same text as there.

    >>> template = compile_template("{% for m in messages %}{{ m.role }}:{{ m.content }}\\n{% endfor %}")
    >>> render_template(template, {"messages": [{"role": "user", "content": "Hi"}]}, TemplateLimits())
    'user:Hi\\n'

Limits (`TemplateLimits`): a render stops with `ChatTemplateError` (reason "time_limit" or "size_limit")
when it runs past `seconds`, when the output, or any one string or list it builds, would pass `max_chars`,
or when the values it made and still holds would pass `max_held_bytes`.
How they are enforced, without threads or signals (a template cannot be killed from outside):
- time: the deadline is checked at every hook the sandbox routes through Python — each attribute or item
  access, each call (every call in a sandboxed template goes through `call`), each filter, each `+ * % **`
  and `~`, each output chunk, and every 1,024 items of a `{% for %}` loop's iterable (recursive loops
  too), so nested loops with empty bodies stop as well. The overrun is one filter or call between hooks.
- size: before an operation that multiplies data runs (`*`, `**`, `%`/`format` widths, `~`, `+`, `join`,
  `center`/`indent`/`replace`, `tojson`, block `set`, calls with a size-like integer argument), its
  result size is estimated — counting every reference to a shared string, so a list of 1,000 references
  to one long string counts as 1,000 strings — and refused past `max_chars`; every result is checked again
  after. A `MemoryError` inside a template is reported as "size_limit" too.
- values without a hook: every list, tuple and dict literal is sized as it is built (`_SizedLiterals`), and
  every `{{ value }}` before it is printed, so `[x, x]` nested forty deep is refused, not printed or compared.
- integers: an operand or result of `+ * ** % //` past `MAX_INT_BITS` is refused before the (GIL-holding) C
  arithmetic runs (`-` is not checked: it cannot make an integer longer by more than a bit).
- `lipsum` runs a paragraph at a time under the deadline.
- one filter call: the deadline is not checked inside it, so the value it works through is bounded first
  (`_ELEMENT_LIMITS`: 1 Mi items, 256 Ki for the sorting ones; `_CHARACTER_LIMITS` for the string filters
  that are Python code per word or character), so that no call takes more than ~0.5 s or ~256 MiB; a
  filter reading items one by one reads a long or lazy value through an iterator that counts them and
  checks the deadline, and every test checks it (`select('in', long_text)` over 1,000 items took 13 s).
  `split`, `rsplit` and `splitlines` of more than 1 Mi characters count their pieces first (`str.count`).
- held values: each result of a filter, call, operator, join or slice of 4,096 characters or more is kept
  in `_Budget.held` with its size (a string's bytes, a container's estimate); when their total doubles,
  those nothing else references any more (`sys.getrefcount`) are let go (those of 1 MiB or more at every
  hook), and what is left must be within `max_held_bytes` (30 values within max_chars each held 1.8 GB).
  A string grown a message at a time holds one string, however many it made.
Not handled: a template's CPU time inside one bounded C operation (e.g. a str method on 16 Mi characters),
which the bounds above keep small.
A render may be a trace (`render_template(..., tracer=)`, template_trace): the same render under the same
limits, in which filters, tests, lookups, calls and joins ask the tracer first about traced content.
"""

from __future__ import annotations

import contextvars
import json
import re
import sys
import time
from collections.abc import Iterator, Mapping, MappingView
from dataclasses import dataclass
from datetime import datetime
from types import GeneratorType
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.runtime
import markupsafe
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.compiler import CodeGenerator, Frame
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

from tokend.errors import ChatTemplateError, ModelFormatError
from tokend.registry.chat.template_limits import TemplateLimits
from tokend.registry.chat.template_trace import TracedText

__all__ = ["TemplateLimits", "CompiledTemplate", "compile_template", "render_template"]


class _LimitExceeded(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class _RaisedByTemplate(TemplateError):
    """raise_exception(message) from a template: its message is the error the caller sees."""


class _Budget:
    __slots__ = ("deadline", "held", "held_bytes", "large", "max_chars", "max_held_bytes", "prune_at", "seconds", "tracer")

    def __init__(self, limits: TemplateLimits, tracer: Any = None) -> None:
        self.tracer = tracer  # a template_trace.ContentTracer during a traced render, else None
        self.seconds = limits.seconds
        self.deadline: float = limits.start().deadline  # type: ignore[assignment]
        if limits.hard_deadline is not None:
            self.deadline = min(self.deadline, limits.hard_deadline)
        self.max_chars = limits.max_chars
        self.max_held_bytes = limits.max_held_bytes
        self.held: dict[int, tuple[Any, int]] = {}  # id -> (value, its bytes): the values made, HELD_MIN_CHARS+
        self.large: dict[int, tuple[Any, int]] = {}  # the same, for values of RELEASE_MIN_BYTES or more
        self.held_bytes = 0  # the bytes of both, summed
        self.prune_at = _PRUNE_BYTES

    def tick(self) -> None:
        if self.large:
            self.release()
        if time.monotonic() > self.deadline:
            raise _LimitExceeded("time_limit", f"the chat template ran longer than {self.seconds:g} s")

    def release(self) -> None:
        """Let go of the large values nothing else references any more. Called at every hook (`tick`), before
        the operation allocates: a value held one operation too long could not give its memory to the next
        one (Qwen3's `'<|im_start|>' + role + '\\n' + content + ...` over an 8 MB message took 3 ms more, and
        Reka-Edge's `ns.out ~ text` over 1,000 messages of 8 KB 650 -> 940 ms)."""
        dead = [key for key, entry in self.large.items() if _references(entry) <= _UNREFERENCED]
        for key in dead:
            self.held_bytes -= self.large.pop(key)[1]

    def hold(self, value: Any, size: int, what: str) -> None:
        """Count a large value the render made (`size` bytes); past `prune_at`, those no longer referenced
        elsewhere are let go (so a template that grows one string, `ns.out ~ text` per message, holds one),
        and what is still referenced must stay within max_held_bytes."""
        if id(value) in self.held or id(value) in self.large:  # the same object made again (a cached result)
            return
        (self.large if size >= RELEASE_MIN_BYTES else self.held)[id(value)] = (value, size)
        self.held_bytes += size
        if self.held_bytes <= self.prune_at:
            return
        self.held = {key: entry for key, entry in self.held.items() if _references(entry) > _UNREFERENCED}
        self.large = {key: entry for key, entry in self.large.items() if _references(entry) > _UNREFERENCED}
        self.held_bytes = sum(size for _, size in self.held.values()) + sum(size for _, size in self.large.values())
        if self.held_bytes > self.max_held_bytes:
            raise _LimitExceeded(
                "size_limit",
                f"the chat template holds {_amount(self.held_bytes)} bytes of values it made, making {what} "
                f"(limit {self.max_held_bytes:,} bytes for one render)",
            )
        # Pruned again when the count doubles: each value is looked at O(1) times on average, and a render keeps
        # at most about as much garbage as it holds.
        self.prune_at = min(max(_PRUNE_BYTES, 2 * self.held_bytes), self.max_held_bytes)

    def size(self, chars: int, what: str) -> None:
        if chars > self.max_chars:
            raise _LimitExceeded(
                "size_limit", f"the chat template would build {what} of about {_amount(chars)} characters (limit {self.max_chars:,})"
            )


# Values the render makes of at least this many characters are counted while they live (`_Budget.hold`):
# ~1 us of copying each, so the count costs no real template anything measurable.
HELD_MIN_CHARS = 4096
# The held values are first checked for garbage past this many bytes.
_PRUNE_BYTES = 4 * 2**20
# ... and values of this many bytes or more at every hook (`_Budget.release`); a render holds at most
# max_held_bytes / RELEASE_MIN_BYTES (64) of them at once, so the check stays short.
RELEASE_MIN_BYTES = 1 << 20


def _references(entry: tuple[Any, int]) -> int:
    return sys.getrefcount(entry[0])


# What `_references` says of a value held only by its entry (the entry's and the call's references: 2 on
# CPython 3.11), measured rather than assumed, as the count differs between interpreter versions.
_UNREFERENCED = _references(("".join(["un", "referenced"]), 0))


def _amount(count: int) -> str:
    # An estimate may be an integer too long for Python to print (more than 4,300 digits).
    return f"{count:,}" if count < 10**18 else f"10^{len(hex(count)) * 4 * 3 // 10}"


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("tokend_chat_template_budget", default=None)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:
        # Jinja folds constant expressions while compiling (`{{ 'a'|center(10**8) }}`), outside any render and
        # its limits; refusing here makes the compiler leave them for render time, where the budget applies.
        raise _LimitExceeded("size_limit", "template code runs only inside a render")
    return budget


def _estimate(value: Any, cap: int) -> int:
    """Characters `str(value)` would take, roughly, stopping once past `cap`. Every reference counts, and a
    container referenced many times is sized once (`[x, x]` nested 40 deep prints 2**40 copies of x)."""
    if isinstance(value, str):  # the common case, without the memo's dict
        return len(value)
    return _estimate_into(value, cap, {})


def _estimate_into(value: Any, cap: int, sizes: dict[int, tuple[Any, int]]) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return 24 if not isinstance(value, int) or value.bit_length() < 64 else value.bit_length() // 3 + 1
    known = sizes.get(id(value))
    if known is not None:
        return known[1]
    if isinstance(value, Mapping):
        items: Any = (item for pair in value.items() for item in pair)
    elif isinstance(value, (list, tuple, set, frozenset, MappingView)):
        items = iter(value)
    elif isinstance(value, Namespace):  # prints as its attributes' dict
        items = (item for pair in object.__getattribute__(value, "_Namespace__attrs").items() for item in pair)
    else:
        return 64  # other objects (Undefined, callables, generators) print short
    total = 2
    for count, item in enumerate(items, 1):
        if type(item) is TracedText:
            _traced_in_container(item)
        total += _estimate_into(item, cap, sizes) + 2
        if total > cap:
            break
        if not count & 0xFFF:  # a long estimate still stops at the render's deadline
            _budget().tick()
    # The object is kept with its size: a view's items are made as they are read and freed after, and a
    # later one could take the address (and so the id) of a freed one.
    sizes[id(value)] = (value, total)
    return total


def _traced_in_container(item: TracedText) -> None:
    # A traced content inside a list or dict: its size here is the marker's, not the content's, and the
    # layout's size bound (template_layout) counts only traced values, not containers of them (nor
    # `[content] * 1000`), so a later chat with a long content could pass where its render would hit
    # `max_chars`. Such a template is not traced.
    item._tracer.stop("content held in a list or dict whose size the sandbox checks")


_SIZED = (str, list, tuple, dict, set, frozenset, Namespace, MappingView)

# Python's integer arithmetic is one C call holding the GIL: `2**24000000 // (2**12000000 + 1)` runs for
# minutes. At 2**16 bits (~19,700 digits; Python itself prints no more than 4,300) the slowest operation,
# a division, takes milliseconds, and no chat template comes near it.
MAX_INT_BITS = 1 << 16


def _check_int(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise _LimitExceeded("size_limit", f"the chat template would build {what}: an integer of about {_amount(bits)} bits (limit {MAX_INT_BITS:,} bits)")


def _check_value(value: Any, what: str) -> Any:
    budget = _budget()
    if isinstance(value, _SIZED):
        budget.size(_estimate(value, budget.max_chars), what)
    elif isinstance(value, int):
        _check_int(value.bit_length(), what)
    return value


def _check_built(value: Any, what: str) -> Any:
    """A value the template made (a result of a filter, call, operator, join or slice): checked as
    `_check_value` does and, when large, counted while it lives (`_Budget.hold`, `max_held_bytes`): a string
    by its memory (1, 2 or 4 bytes a character), a list, tuple or dict by its items' characters (each value
    is within max_chars, but 30 strings of 16 M emoji held 1.8 GB)."""
    budget = _budget()
    if isinstance(value, str):
        chars = len(value)
        budget.size(chars, what)
        if chars >= HELD_MIN_CHARS:
            budget.hold(value, sys.getsizeof(value), what)
    elif isinstance(value, _SIZED):
        chars = _estimate(value, budget.max_chars)
        budget.size(chars, what)
        if chars >= HELD_MIN_CHARS:
            budget.hold(value, chars, what)
    elif isinstance(value, int):
        _check_int(value.bit_length(), what)
    return value


def _check_printed(value: Any) -> Any:
    """Every `{{ value }}` before it is turned into text (the environment's `finalize`): a container is sized
    first, so one that references itself many times over is refused instead of printed."""
    if isinstance(value, _SIZED) and not isinstance(value, str):
        _check_value(value, "output")
    return value


class _SizedLiterals(CodeGenerator):
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


# A `{% for %}` with an empty body passes no hook: the deadline is checked every this many items.
LOOP_TICK_ITEMS = 1024


def _iterated(iterable: Any) -> Any:
    """A loop's iterable, checking the render's deadline every LOOP_TICK_ITEMS items. A short list, tuple,
    string, dict or range (every loop of a real template) is returned as it is."""
    budget = _budget()
    budget.tick()
    if type(iterable) in _SHORT_ITERABLES and len(iterable) < LOOP_TICK_ITEMS:
        return iterable
    if type(iterable) is GeneratorType and iterable.gi_code is _ticking.__code__:
        return iterable  # already checked (the `loop` of an iterable the loop line checked)
    return _ticking(iterable, budget)


_SHORT_ITERABLES = frozenset({list, tuple, str, dict, range})


def _ticking(iterable: Any, budget: _Budget) -> Any:
    count = 0
    for item in iterable:
        count += 1
        if not count % LOOP_TICK_ITEMS:
            budget.tick()
        yield item


class _CheckedLoopContext(jinja2.runtime.LoopContext):
    """Jinja's `loop`, its iterable checked: a recursive loop's `loop(children)` reaches the loop line through
    here, not through the iterable `_SizedLiterals` wraps."""

    def __init__(self, iterable: Any, undefined: Any, recurse: Any = None, depth0: int = 0) -> None:
        super().__init__(_iterated(iterable), undefined, recurse, depth0)


_FORMAT_FIELD = re.compile(r"\{[^{}]*\}|%[^a-zA-Z%]*[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _check_format_spec(text: str, what: str) -> None:
    """Refuse `{:>99999999}` / `%099999999d`-style widths before they allocate."""
    budget = _budget()
    for field in _FORMAT_FIELD.findall(text):
        for digits in _DIGITS.findall(field):
            if len(digits) > 12 or int(digits) > budget.max_chars:
                budget.size(int(digits[:13]), what)


def _check_int_arguments(args: tuple, kwargs: Mapping[str, Any], what: str) -> None:
    budget = _budget()
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > budget.max_chars:
            budget.size(value, what)


def _bounded_join(parts: Any) -> str:
    budget = _budget()
    budget.tick()
    parts = list(parts)
    budget.size(sum(_estimate(part, budget.max_chars) for part in parts), "a string")
    joined = _check_built("".join(parts), "a string")
    if budget.tracer is not None:  # a captured block (`{% set %}`, macro, call, filter block) of a traced render
        return budget.tracer.captured(joined)
    return joined


def _bounded_str_join(seq: Any) -> str:
    budget = _budget()
    if budget.tracer is not None:  # `~` of a traced render: traced operands stay traced
        seq = list(seq)
        joined = budget.tracer.join(seq)
        if joined is not None:
            return joined
    return _bounded_join(map(str, seq))


def _bounded_markup_join(seq: Any) -> str:
    budget = _budget()
    if budget.tracer is not None:
        seq = list(seq)
        joined = budget.tracer.join(seq)
        if joined is not None:
            return joined
    return _check_built(jinja2.runtime.markup_join(list(map(_check_joined, seq))), "a string")


def _check_joined(value: Any) -> Any:
    _budget().tick()
    return _check_value(value, "a string")


class _GenerationBlock(jinja2.ext.Extension):
    """transformers' `{% generation %}...{% endgeneration %}` (assistant-mask tracking): renders its body."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body).set_lineno(lineno)


def _raise_exception(message: Any) -> None:
    raise _RaisedByTemplate(str(message))


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys: bool = False) -> str:
    # transformers' tojson: no HTML escaping (Jinja's own escapes <, >, &, '), optional indent/separators.
    budget = _budget()
    budget.tick()
    if isinstance(indent, int) and not isinstance(indent, bool):
        budget.size(_estimate(value, budget.max_chars) * max(1, indent), "JSON text")
    elif isinstance(indent, str):
        budget.size(_estimate(value, budget.max_chars) * max(1, len(indent)), "JSON text")
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return _check_built(text, "JSON text")


# lipsum's words are at most 14 characters; a paragraph of more than this many would take over 100 ms.
_LIPSUM_MAX_WORDS = 100_000


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's `lipsum`, one paragraph at a time under the render's deadline, refused up front when even its
    shortest paragraphs would pass the size limit."""
    budget = _budget()
    n, min, max = int(n), int(min), int(max)
    if max > _LIPSUM_MAX_WORDS:
        budget.size(max * 4, "lipsum text")
    budget.size(n * min * 3, "lipsum text")  # a word and its space take at least 3 characters
    paragraphs: list[str] = []
    produced = 0
    for _ in range(n):
        budget.tick()
        paragraph = generate_lorem_ipsum(n=1, html=False, min=min, max=max)
        produced += len(paragraph) + 2
        budget.size(produced, "lipsum text")
        paragraphs.append(paragraph)
    if not html:
        return "\n\n".join(paragraphs)
    return markupsafe.Markup("\n".join(f"<p>{markupsafe.escape(p)}</p>" for p in paragraphs))


_lipsum.__name__ = "lipsum"


def _strftime_now(format: str) -> str:
    _check_format_spec(str(format), "a date")
    return datetime.now().strftime(format)


# Filters whose result can be much larger than their arguments: estimated before they run. Every other filter
# returns at most what it is given (length, trim, first, map, ...) and is only checked after.
_SERIALISING_FILTERS = frozenset({"join", "string", "pprint", "xmlattr", "urlize", "wordwrap", "center", "batch", "slice", "list"})
_GROWING_FILTERS = _SERIALISING_FILTERS | {"indent", "replace", "format"}

# One filter call is one step between hooks: the deadline is not checked inside it, so its input is bounded
# before it runs, such that no call takes more than ~0.5 s of CPU or ~256 MiB (measured on the 2-core build
# machine, the worst input found for each; docs/decisions.md, "Chat templates: one filter call ...").
# Elements (a list's or dict's items, a string's characters) of the value a filter walks item by item:
MAX_ELEMENTS = 1 << 20  # select/reject/map/unique/min/max/sum/batch/slice/list/join: <= ~1 us and ~120 B an item
MAX_SORTED_ELEMENTS = 1 << 18  # sorting (key per item, then the sort): ~1.6 us and ~250 B an item
# filter -> the most elements of its value
_ELEMENT_LIMITS = {
    **dict.fromkeys(("select", "reject", "selectattr", "rejectattr", "map", "unique", "min", "max", "sum"), MAX_ELEMENTS),
    **dict.fromkeys(("batch", "slice", "list", "join", "items"), MAX_ELEMENTS),
    **dict.fromkeys(("sort", "groupby", "dictsort", "xmlattr"), MAX_SORTED_ELEMENTS),
}
# Filters that take any iterable the same way: a value past LOOP_TICK_ITEMS is handed to them as an iterator
# that counts its items and checks the deadline (a per-item test or filter, e.g. `select('in', long_text)` or
# `sum(start=[])`, is slow however few the items). The others (items, dictsort, xmlattr) need a dict.
_ITERATING_FILTERS = frozenset(_ELEMENT_LIMITS) - {"items", "dictsort", "xmlattr"}
# Characters of the string a filter works through in Python, a word or a character at a time.
# filter -> the most characters of its value (worst measured: ns and bytes a character)
_CHARACTER_LIMITS = {
    "urlize": 1 << 18,  # 1,190 ns, 160 B ("1 1 1 ...", "<<<...")
    "wordwrap": 1 << 17,  # 1,730 ns, 95 B (emoji); and see _WORDWRAP_WORK
    "title": 1 << 20,  # 180 ns, 80 B ("1 1 1 ...")
    "striptags": 1 << 21,  # 120 ns, 26 B ("<a><a>...")
    "urlencode": 1 << 21,  # 170 ns, 48 B (emoji: 12 characters out for each)
    "wordcount": 1 << 22,  # 90 ns, 24 B (a list of the words)
}
# wordwrap cuts a word longer than its width one line at a time, copying the rest of the word each time:
# len(value)**2 / width characters copied (a 1 M-character word at width 1 took 130 s). 2**32 is ~0.3 s.
_WORDWRAP_WORK = 1 << 32
# pprint is Python code for every item and line: at most this many characters of its value (~450 ns each).
_PPRINT_CHARS = 1 << 19
# indent splits its value into lines and joins them again: at most this many lines (~50 ns, 17 B each).
_INDENT_LINES = 1 << 22


def _wrap_filter(name: str, function: Any) -> Any:
    """Every filter: deadline, size-like integer arguments, the size of the value it works through, an
    estimate for the ones that multiply, result."""
    # pass_context / pass_eval_context / pass_environment filters get that first, then their value.
    first = 1 if hasattr(function, "jinja_pass_arg") else 0
    element_limit = _ELEMENT_LIMITS.get(name)
    iterating = name in _ITERATING_FILTERS
    character_limit = _CHARACTER_LIMITS.get(name)

    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        if budget.tracer is not None:  # a traced render: the tracer models this filter on traced content, or stops
            handled, result = budget.tracer.filter(name, args, kwargs)
            if handled:
                return result
        _check_int_arguments(args[first + 1 :], kwargs, f"the result of the {name!r} filter")
        if len(args) <= first:
            return _check_built(function(*args, **kwargs), f"the result of the {name!r} filter")
        value = args[first]
        if element_limit is not None:
            counted = _elements_within(value, element_limit, name, iterating, budget)
            if counted is not value:
                args = (*args[:first], counted, *args[first + 1 :])
        elif character_limit is not None and isinstance(value, str) and len(value) > character_limit:
            _refuse_filter(name, f"{len(value):,} characters", f"{character_limit:,} characters")
        if name in _GROWING_FILTERS:
            estimate = _estimate(value, budget.max_chars)
            if name == "indent":
                width = args[1] if len(args) > 1 else kwargs.get("width", 4)
                width_chars = width if isinstance(width, int) else len(str(width))
                lines = value.count("\n") + 1 if isinstance(value, str) else 1
                if lines > _INDENT_LINES:
                    _refuse_filter(name, f"{lines:,} lines", f"{_INDENT_LINES:,} lines")
                budget.size(estimate + width_chars * lines, f"the result of the {name!r} filter")
            elif name == "replace" and isinstance(value, str) and len(args) > first + 2:
                old, new = str(args[first + 1]), str(args[first + 2])
                growth = (value.count(old) if old else len(value) + 1) * max(0, len(new) - len(old))
                budget.size(estimate + growth, f"the result of the {name!r} filter")
            elif name == "format" and isinstance(value, str):
                _check_format_spec(value, "the result of the 'format' filter")
                budget.size(estimate + sum(_estimate(arg, budget.max_chars) for arg in args[1:]), "a string")
            elif name == "join" and isinstance(value, str):  # a string's characters with the separator between
                separator = args[first + 1] if len(args) > first + 1 else kwargs.get("d", "")
                budget.size(estimate + len(str(separator)) * len(value), f"the result of the {name!r} filter")
            elif name == "wordwrap" and isinstance(value, str):
                width = args[first + 1] if len(args) > first + 1 else kwargs.get("width", 79)
                if isinstance(width, int) and len(value) ** 2 // max(1, width) > _WORDWRAP_WORK:
                    work = f"{_WORDWRAP_WORK:,} for length² / width"
                    _refuse_filter(name, f"{len(value):,} characters at width {width}", work)
                budget.size(estimate, f"the result of the {name!r} filter")
            elif name == "pprint" and estimate > _PPRINT_CHARS:
                _refuse_filter(name, f"about {_amount(estimate)} characters", f"{_PPRINT_CHARS:,} characters")
            elif name in _SERIALISING_FILTERS:
                budget.size(estimate, f"the result of the {name!r} filter")
        result = function(*args, **kwargs)
        if result is value:  # `trim` of a string with nothing to trim, `default` of a defined value: not made here
            return result
        return _check_built(result, f"the result of the {name!r} filter")

    bounded.__name__ = getattr(function, "__name__", name)
    # Keep Jinja's pass_context / pass_eval_context / pass_environment marker, so it passes the same arguments.
    if hasattr(function, "jinja_pass_arg"):
        bounded.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _elements_within(value: Any, limit: int, name: str, iterating: bool, budget: _Budget) -> Any:
    """`value`, refused when it has more than `limit` items; one of more than LOOP_TICK_ITEMS, or an iterator
    (a generator: `s|map(...)|list`), as an iterator counting them (for a filter that takes any iterable)."""
    try:
        length = len(value)
    except TypeError:
        length = None
    if length is not None:
        if length > limit:
            unit = "characters" if isinstance(value, str) else "items"
            _refuse_filter(name, f"{length:,} {unit}", f"{limit:,} {unit}")
        if length < LOOP_TICK_ITEMS or not iterating:
            return value
    elif not iterating or not isinstance(value, Iterator):  # None, Undefined, a number: the filter's own answer
        return value
    return _counting(value, limit, name, budget)


def _counting(iterable: Any, limit: int, name: str, budget: _Budget) -> Any:
    count = 0
    for item in iterable:
        count += 1
        if not count % LOOP_TICK_ITEMS:
            budget.tick()
            if count > limit:
                _refuse_filter(name, f"more than {limit:,} items", f"{limit:,} items")
        yield item


def _refuse_filter(name: str, amount: str, limit: str) -> None:
    raise _LimitExceeded("size_limit", f"the chat template gave the {name!r} filter {amount} (limit {limit} for one call)")


def _wrap_test(name: str, function: Any) -> Any:
    """Every test: in a traced render, the tracer answers it for traced content (or stops the trace)."""

    def traced(*args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        if budget is None:
            return function(*args, **kwargs)
        # One test can be slow (`in` a long string), and `select` / `reject` run one per item with no other hook.
        budget.tick()
        if budget.tracer is not None:
            handled, result = budget.tracer.test(name, args, kwargs)
            if handled:
                return result
        return function(*args, **kwargs)

    traced.__name__ = getattr(function, "__name__", name)
    if hasattr(function, "jinja_pass_arg"):
        traced.jinja_pass_arg = function.jinja_pass_arg  # type: ignore[attr-defined]
    return traced


class ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """transformers' chat-template environment, with every hook checking the render's budget."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})  # not "-": it cannot grow a value
    code_generator_class = _SizedLiterals

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols], finalize=_check_printed
        )
        self.filters["tojson"] = _tojson
        self.filters = {name: _wrap_filter(name, function) for name, function in self.filters.items()}
        self.tests = {name: _wrap_test(name, function) for name, function in self.tests.items()}
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now
        self.globals["lipsum"] = _lipsum

    concat = staticmethod(_bounded_join)  # block `set`, macro bodies, render()

    iterated = staticmethod(_iterated)  # every `{% for %}`'s iterable (`_SizedLiterals`)

    @staticmethod
    def sized(value: Any) -> Any:
        """A list, tuple or dict literal as it is built (`_SizedLiterals`)."""
        return _check_value(value, "a list" if isinstance(value, list) else "a tuple" if isinstance(value, tuple) else "a dict")

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget = _budget()
        budget.tick()
        if budget.tracer is not None:
            budget.tracer.lookup(attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget = _budget()
        budget.tick()
        if budget.tracer is not None:
            budget.tracer.lookup(argument)
        if type(argument) is slice:  # `s[1:]` copies
            return _check_built(super().getitem(obj, argument), "a slice")
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        budget = _budget()
        budget.tick()
        what = f"the result of {getattr(__obj, '__name__', 'a call')}()"
        if budget.tracer is not None and (__obj is _strftime_now or __obj is _ENVIRONMENT.globals.get("lipsum")):
            budget.tracer.stop("a call whose result changes between renders")
        _check_int_arguments(args, kwargs, what)
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in {"format", "format_map"}:
                _check_format_spec(owner, what)
                budget.size(len(owner) + sum(_estimate(arg, budget.max_chars) for arg in (*args, *kwargs.values())), what)
            elif name == "join" and args:
                budget.size(_estimate(args[0], budget.max_chars) + len(owner) * _length(args[0]), what)
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                growth = (owner.count(old) if old else len(owner) + 1) * max(0, len(new) - len(old))
                budget.size(len(owner) + growth, what)
            elif name == "expandtabs":
                budget.size(len(owner) * max(1, int(args[0]) if args and isinstance(args[0], int) else 8), what)
            elif name in _SPLITTING_METHODS and len(owner) > MAX_ELEMENTS:
                pieces = _most_pieces(owner, name, args, kwargs)
                if pieces > MAX_ELEMENTS:
                    raise _LimitExceeded(
                        "size_limit",
                        f"the chat template would split a string of {len(owner):,} characters into up to {pieces:,} "
                        f"pieces with {name}() (limit {MAX_ELEMENTS:,} for one call)",
                    )
        result = super().call(__context, __obj, *args, **kwargs)
        if owner is not None and result is owner:  # `s.strip()` of a string with nothing to strip is `s`
            return result
        return _check_built(result, what)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.tick()
        what = f"the result of {operator!r}"
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
                    budget.size(_estimate(sequence, budget.max_chars) * max(0, times), what)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                budget.size(right * abs(left).bit_length() // 3, what)  # its digits
                _check_int(right * abs(left).bit_length(), what)
        elif operator == "%" and isinstance(left, str):
            _check_format_spec(left, what)
            budget.size(len(left) + _estimate(right, budget.max_chars), what)
        elif operator == "+" and isinstance(left, (str, list, tuple)):
            budget.size(_estimate(left, budget.max_chars) + _estimate(right, budget.max_chars), what)
        if isinstance(left, int) and isinstance(right, int):  # bools too: they are ints to Python
            _check_int(max(left.bit_length(), right.bit_length()), what)  # operands may come from the conversation
            if operator == "*":
                _check_int(left.bit_length() + right.bit_length(), what)
        return _check_built(super().call_binop(context, operator, left, right), what)


# A str method making a list of new strings: 16 M characters of "ab cd " split into 5.4 M strings took +382 MiB
# before the result could be sized. Past MAX_ELEMENTS characters, the pieces are counted first (`str.count`).
_SPLITTING_METHODS = frozenset({"split", "rsplit", "splitlines"})
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what splitlines splits at ("\r\n" counted twice)
# What split() splits at (str.isspace()): in ASCII text, and the others
_WHITESPACE = "\t\n\v\f\r \x1c\x1d\x1e\x1f"
_WHITESPACE_WIDE = (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _most_pieces(text: str, name: str, args: tuple, kwargs: Mapping[str, Any]) -> int:
    """At most how many pieces `text.split(...)` / `rsplit` / `splitlines` makes: one more than its separators."""
    if name == "splitlines":
        return 1 + sum(map(text.count, _LINE_BREAKS))
    separator = args[0] if args else kwargs.get("sep")
    most = args[1] if len(args) > 1 else kwargs.get("maxsplit", -1)
    if isinstance(separator, str) and separator:
        pieces = text.count(separator) + 1
    else:  # whitespace runs
        pieces = (len(text) + 1) // 2 + 1
        if pieces > MAX_ELEMENTS:
            pieces = 1 + sum(map(text.count, _WHITESPACE if text.isascii() else _WHITESPACE + _WHITESPACE_WIDE))
    return min(pieces, most + 1) if isinstance(most, int) and most >= 0 else pieces


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


@dataclass(frozen=True)
class CompiledTemplate:
    source: str
    template: jinja2.Template


_ENVIRONMENT = ChatTemplateEnvironment()


def compile_template(source: str) -> CompiledTemplate:
    """Compile a chat template once; a syntax error is a `ModelFormatError` naming the line."""
    if not isinstance(source, str) or not source:
        raise ModelFormatError("a chat template must be non-empty text")
    try:
        template = _ENVIRONMENT.from_string(source)
    except TemplateSyntaxError as error:
        raise ModelFormatError(f"chat template does not compile: line {error.lineno}: {error.message}") from None
    except TemplateError as error:
        raise ModelFormatError(f"chat template does not compile: {error}") from None
    # `~` compiles to module-level str_join / markup_join: route them through the size check too.
    namespace = template.root_render_func.__globals__
    namespace["str_join"] = _bounded_str_join
    namespace["markup_join"] = _bounded_markup_join
    namespace["LoopContext"] = _CheckedLoopContext  # recursive loops' `loop(children)`
    return CompiledTemplate(source, template)


def render_template(compiled: CompiledTemplate, variables: Mapping[str, Any], limits: TemplateLimits, tracer: Any = None) -> str:
    """Render within `limits`; every failure is a `ChatTemplateError` with its reason. With a `tracer`
    (template_trace), the variables hold traced content and the render is a trace: one that used content in a
    way the tracer does not model fails with reason "untraceable", whatever else it raised."""
    budget = _Budget(limits, tracer)
    token = _BUDGET.set(budget)
    started = time.thread_time()
    chunks: list[str] = []
    produced = 0
    try:
        try:
            for chunk in compiled.template.generate(**variables):
                produced += len(chunk)
                budget.size(produced, "output")
                budget.tick()
                chunks.append(chunk)
        finally:
            if tracer is not None and tracer.stopped is not None:
                raise ChatTemplateError(f"the chat template used content in a way a trace cannot follow: {tracer.stopped}", reason="untraceable")
    except ChatTemplateError:
        raise
    except _LimitExceeded as error:
        raise ChatTemplateError(str(error), reason=error.reason) from None
    except _RaisedByTemplate as error:
        raise ChatTemplateError(f"the chat template refused the conversation: {error.message}", reason="raised") from None
    except SecurityError as error:
        raise ChatTemplateError(f"the chat template did something the sandbox forbids: {error}", reason="security") from None
    except MemoryError:
        raise ChatTemplateError("the chat template ran out of memory", reason="size_limit") from None
    except RecursionError:
        raise ChatTemplateError("the chat template recursed too deeply", reason="failed") from None
    except Exception as error:  # anything a template can raise on bad data (TypeError, UndefinedError, ...)
        if tracer is not None:
            tracer.failure = error
        raise ChatTemplateError(f"the chat template failed: {type(error).__name__}: {error}", reason="failed") from None
    finally:
        _BUDGET.reset(token)
        if limits.clock is not None:
            limits.clock.spent += time.thread_time() - started
    return "".join(chunks)
