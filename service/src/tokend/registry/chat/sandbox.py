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
when it has run `seconds` of CPU time, waited as long for other renders' turns, or taken its wall-clock
bound (4 × `seconds`, or the call's deadline), when the output, or any one string or list it builds, would
pass `max_chars`, or when the values it made and still holds would pass `max_held_bytes`.
How they are enforced, without threads or signals (a template cannot be killed from outside):
- time: its clocks (template_budget) are checked at every hook the sandbox routes through Python — each
  attribute or item access, each call (every call in a sandboxed template goes through `call`), each
  filter, each `+ * % **` and `~`, each output chunk, and every 1,024 items of a `{% for %}` loop's
  iterable (recursive loops too; template_code_hooks), so nested loops with empty bodies stop as well. The
  overrun is one filter or call between hooks.
- size: before an operation that multiplies data runs (`*`, `**`, `%`/`format` widths, `~`, `+`, `join`,
  `center`/`indent`/`replace`, `tojson`, block `set`, calls with a size-like integer argument), its
  result size is estimated (template_sizes) — counting every reference to a shared string, so a list of
  1,000 references to one long string counts as 1,000 strings — and refused past `max_chars`; every result
  is checked again after. A `MemoryError` inside a template is reported as "size_limit" too.
- values without a hook: every list, tuple and dict literal is sized as it is built (template_code_hooks),
  and every `{{ value }}` before it is printed, so `[x, x]` nested forty deep is refused, not printed or
  compared.
- integers: an operand or result of `+ * ** % //` past `MAX_INT_BITS` is refused before the (GIL-holding) C
  arithmetic runs (`-` is not checked: it cannot make an integer longer by more than a bit).
- `lipsum` runs a paragraph at a time under the deadline.
- one filter call: the deadline is not checked inside it, so the value it works through is bounded first
  (template_filters), so that no call takes more than ~0.5 s or ~256 MiB; `split`, `rsplit` and
  `splitlines` of more than 1 Mi characters count their pieces first (`str.count`).
- held values: each result of a filter, call, operator, join or slice of 4,096 characters or more is kept
  with its size (`RenderBudget.hold`, template_budget); when their total doubles, those nothing else
  references any more are let go, and what is left must be within `max_held_bytes` (30 values within
  max_chars each held 1.8 GB). A string grown a message at a time holds one string, however many it made.
Not handled: a template's CPU time inside one bounded C operation (e.g. a str method on 16 Mi characters),
which the bounds above keep small.
A render may be a trace (`render_template(..., tracer=)`, template_trace): the same render under the same
limits, in which filters, tests, lookups, calls and joins ask the tracer first about traced content.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import markupsafe
from jinja2.exceptions import SecurityError, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace, generate_lorem_ipsum

from tokend.engine.call_stop import CallStopped
from tokend.errors import ChatTemplateError, ModelFormatError
from tokend.registry.chat.template_budget import RENDER_BUDGET, CountedRenderBudget, LimitExceeded, RenderBudget, current_budget
from tokend.registry.chat.template_code_hooks import (
    CheckedLoopContext,
    SizedLiterals,
    bounded_join,
    bounded_markup_join,
    bounded_str_join,
    iterated,
)
from tokend.registry.chat.template_filters import MAX_ELEMENTS, SPLITTING_METHODS, bounded_filter, bounded_test, most_pieces
from tokend.registry.chat.template_limits import TemplateLimits
from tokend.registry.chat.template_sizes import (
    check_built,
    check_format_spec,
    check_int,
    check_int_arguments,
    check_printed,
    check_value,
    estimate,
)

__all__ = ["TemplateLimits", "CompiledTemplate", "compile_template", "render_template", "renders_in_turn"]


class _RaisedByTemplate(TemplateError):
    """raise_exception(message) from a template: its message is the error the caller sees."""


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
    budget = current_budget()
    budget.tick()
    if isinstance(indent, int) and not isinstance(indent, bool):
        budget.size(estimate(value, budget.max_chars) * max(1, indent), "JSON text")
    elif isinstance(indent, str):
        budget.size(estimate(value, budget.max_chars) * max(1, len(indent)), "JSON text")
    text = json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    return check_built(text, "JSON text")


# lipsum's words are at most 14 characters; a paragraph of more than this many would take over 100 ms.
_LIPSUM_MAX_WORDS = 100_000


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's `lipsum`, one paragraph at a time under the render's deadline, refused up front when even its
    shortest paragraphs would pass the size limit."""
    budget = current_budget()
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
    check_format_spec(str(format), "a date")
    return datetime.now().strftime(format)


class ChatTemplateEnvironment(ImmutableSandboxedEnvironment):
    """transformers' chat-template environment, with every hook checking the render's budget."""

    intercepted_binops = frozenset({"+", "*", "**", "%", "//"})  # not "-": it cannot grow a value
    code_generator_class = SizedLiterals

    def __init__(self) -> None:
        super().__init__(
            trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols], finalize=check_printed
        )
        self.filters["tojson"] = _tojson
        self.filters = {name: bounded_filter(name, function) for name, function in self.filters.items()}
        self.tests = {name: bounded_test(name, function) for name, function in self.tests.items()}
        self.globals["raise_exception"] = _raise_exception
        self.globals["strftime_now"] = _strftime_now
        self.globals["lipsum"] = _lipsum

    concat = staticmethod(bounded_join)  # block `set`, macro bodies, render()

    iterated = staticmethod(iterated)  # every `{% for %}`'s iterable (`SizedLiterals`)

    @staticmethod
    def sized(value: Any) -> Any:
        """A list, tuple or dict literal as it is built (`SizedLiterals`)."""
        return check_value(value, "a list" if isinstance(value, list) else "a tuple" if isinstance(value, tuple) else "a dict")

    def getattr(self, obj: Any, attribute: str) -> Any:
        budget = current_budget()
        budget.tick()
        if budget.tracer is not None:
            budget.tracer.lookup(attribute)
        # The lookups real templates make at nearly every step (`message.content`, `content.startswith`,
        # `ns.last_query_index`), answered as Jinja's sandbox answers them without its detours: a key of a plain
        # dict that no dict attribute shadows is its item (Jinja reaches it after the AttributeError of
        # `getattr`); a public method of a plain str is safe (`is_safe_attribute`), but for `format` and
        # `format_map`, which Jinja wraps; a public attribute of a namespace holding plain data is that data.
        # A 10,000-message Qwen3 render, 85,000 lookups: 0.28 -> 0.18 s of CPU (docs/decisions.md).
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES:
            if attribute in obj:
                return obj[attribute]
        elif kind is str and attribute in _STR_METHODS:
            return getattr(obj, attribute)
        elif kind is Namespace and attribute[:1] != "_":
            value = getattr(obj, attribute, _MISSING)
            if type(value) in _PLAIN_TYPES:
                return value
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        budget = current_budget()
        budget.tick()
        if budget.tracer is not None:
            budget.tracer.lookup(argument)
        if type(argument) is slice:  # `s[1:]` copies
            return check_built(super().getitem(obj, argument), "a slice")
        return super().getitem(obj, argument)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 (Jinja's signature)
        budget = current_budget()
        budget.tick()
        what = f"the result of {getattr(__obj, '__name__', 'a call')}()"
        if budget.tracer is not None and (__obj is _strftime_now or __obj is _ENVIRONMENT.globals.get("lipsum")):
            budget.tracer.stop("a call whose result changes between renders")
        check_int_arguments(args, kwargs, what)
        owner = getattr(getattr(__obj, "__wrapped__", __obj), "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name in {"format", "format_map"}:
                check_format_spec(owner, what)
                budget.size(len(owner) + sum(estimate(arg, budget.max_chars) for arg in (*args, *kwargs.values())), what)
            elif name == "join" and args:
                budget.size(estimate(args[0], budget.max_chars) + len(owner) * _length(args[0]), what)
            elif name == "replace" and len(args) >= 2:
                old, new = str(args[0]), str(args[1])
                growth = (owner.count(old) if old else len(owner) + 1) * max(0, len(new) - len(old))
                budget.size(len(owner) + growth, what)
            elif name == "expandtabs":
                budget.size(len(owner) * max(1, int(args[0]) if args and isinstance(args[0], int) else 8), what)
            elif name in SPLITTING_METHODS and len(owner) > MAX_ELEMENTS:
                pieces = most_pieces(owner, name, args, kwargs)
                if pieces > MAX_ELEMENTS:
                    raise LimitExceeded(
                        "size_limit",
                        f"the chat template would split a string of {len(owner):,} characters into up to {pieces:,} "
                        f"pieces with {name}() (limit {MAX_ELEMENTS:,} for one call)",
                    )
        result = super().call(__context, __obj, *args, **kwargs)
        if owner is not None and result is owner:  # `s.strip()` of a string with nothing to strip is `s`
            return result
        return check_built(result, what)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        budget = current_budget()
        budget.tick()
        what = f"the result of {operator!r}"
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
                    budget.size(estimate(sequence, budget.max_chars) * max(0, times), what)
        elif operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:
                budget.size(right * abs(left).bit_length() // 3, what)  # its digits
                check_int(right * abs(left).bit_length(), what)
        elif operator == "%" and isinstance(left, str):
            check_format_spec(left, what)
            budget.size(len(left) + estimate(right, budget.max_chars), what)
        elif operator == "+" and isinstance(left, (str, list, tuple)):
            budget.size(estimate(left, budget.max_chars) + estimate(right, budget.max_chars), what)
        if isinstance(left, int) and isinstance(right, int):  # bools too: they are ints to Python
            check_int(max(left.bit_length(), right.bit_length()), what)  # operands may come from the conversation
            if operator == "*":
                check_int(left.bit_length() + right.bit_length(), what)
        return check_built(super().call_binop(context, operator, left, right), what)


# Names `getattr(a_dict, name)` finds (a key of one of these names is reached only as `d['items']`), and the
# public methods of str the sandbox allows as they are (`format` and `format_map` it wraps).
_DICT_ATTRIBUTES = frozenset(dir(dict))
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_")) - {"format", "format_map"}
# Values a namespace's attribute is answered with as it is: data, neither a method nor anything with attributes
# of its own the sandbox judges.
_PLAIN_TYPES = frozenset({str, int, float, bool, type(None), list, tuple, dict})
_MISSING = object()


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
    except (RecursionError, SyntaxError, MemoryError) as error:
        # Nesting Jinja's parser or Python's compiler cannot follow (`{% if %}` 100 deep is Python's "too many
        # levels of indentation", `((...))` 5,000 deep a RecursionError): they reached `tokend registry
        # chat-format` and the GGUF import as a traceback.
        raise ModelFormatError(
            f"chat template does not compile: nested too deeply ({type(error).__name__}: {str(error)[:100]})"
        ) from None
    # `~` compiles to module-level str_join / markup_join: route them through the size check too.
    namespace = template.root_render_func.__globals__
    namespace["str_join"] = bounded_str_join
    namespace["markup_join"] = bounded_markup_join
    namespace["LoopContext"] = CheckedLoopContext  # recursive loops' `loop(children)`
    return CompiledTemplate(source, template)


@contextlib.contextmanager
def renders_in_turn(limits: TemplateLimits) -> Iterator[None]:
    """The renders of one conversation inside (its whole and every prefix, template_format; a trace's,
    template_layout) hold this process's render turn (render_turns) as one: taken once, passed on only when
    its slice is over and others wait. A turn taken per render made a conversation of N messages wait behind
    every other render N + 1 times (a slice each time): 100 messages with tools beside 4 spinning renders,
    90 ms -> 890 ms, and past the 1 s template limit beside a few more. `limits` started (`start()`)."""
    budget = RenderBudget(limits)
    try:
        try:
            budget.take_turn()
        except LimitExceeded as error:
            raise ChatTemplateError(str(error), reason=error.reason) from None
        yield
    finally:
        budget.end_turn()  # also when the turn was not had: the call no longer counts among those rendering


def render_template(compiled: CompiledTemplate, variables: Mapping[str, Any], limits: TemplateLimits, tracer: Any = None,
                    positions: Any = None) -> str:
    """Render within `limits`; every failure is a `ChatTemplateError` with its reason. With a `tracer`
    (template_trace), the variables hold traced content and the render is a trace: one that used content in a
    way the tracer does not model fails with reason "untraceable", whatever else it raised. With `positions`
    (message_positions), the render records where its loops reach the messages and the work it did."""
    budget = RenderBudget(limits, tracer) if positions is None else CountedRenderBudget(limits, tracer, positions)
    token = RENDER_BUDGET.set(budget)
    started = time.thread_time()
    began = time.monotonic() if positions is not None else 0.0
    chunks: list[str] = []
    produced = 0
    try:
        try:
            budget.take_turn()  # one render at a time in this process (render_turns)
            if positions is None:
                for chunk in compiled.template.generate(**variables):
                    produced += len(chunk)
                    budget.size(produced, "output")
                    budget.tick()
                    chunks.append(chunk)
            else:  # the output so far, for the loops to record (message_positions)
                for chunk in compiled.template.generate(**variables):
                    produced += len(chunk)
                    budget.size(produced, "output")
                    budget.tick()
                    chunks.append(chunk)
                    positions.produced = produced
        finally:
            if tracer is not None and tracer.stopped is not None:
                raise ChatTemplateError(f"the chat template used content in a way a trace cannot follow: {tracer.stopped}", reason="untraceable")
    except (ChatTemplateError, CallStopped):  # CallStopped: the call went away; the service answers it
        raise
    except LimitExceeded as error:
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
        budget.end_turn()
        RENDER_BUDGET.reset(token)
        if positions is not None:
            positions.total_ticks, positions.seconds = budget.ticks, time.thread_time() - started
            positions.wall_seconds = time.monotonic() - began
        if limits.clock is not None:
            limits.clock.spent += time.thread_time() - started
    return "".join(chunks)
