"""Tracing a chat template: render it once with each message's content replaced by a `TracedText`, and learn
where the contents land in the output and what the template asked about them.

A traced render is a normal sandboxed render (same limits) in which `messages[k]["content"]` is a
`TracedText`, not a str. Everything the template does with it goes through code of ours, and each operation
is either *modelled* or *stops* the trace:
- output (`{{ content }}`) writes a marker (`ContentTracer.marker`): the rendered text names where each
  content goes; `+` and `~` with text, and captured output (`{% set %}` blocks, macros), keep a TracedText;
- questions whose answer depends on the content (`'</think>' in c`, `c.startswith(...)`, `==`, truth) are
  answered with the real content's answer and recorded as a *guard*: the trace holds for another chat only
  if every guard gives the same answer on its contents;
- `c|trim` / `c.strip()` becomes a stripped marker; `lstrip`/`rstrip`/`strip` with characters hold when
  they change nothing (a guard);
- anything else — length, indexing, iteration, hashing, ordering, other filters, `tojson`, formatting,
  `str()` outside output, a call to a Python function that wants a real str (it raises a TypeError) — stops
  the trace (`stopped`), and the render fails with reason "untraceable". So does a call whose result changes
  between renders (`strftime_now`, `lipsum`, `|random`).
Why this is safe: TracedText is not a str, so no C function of Python or Jinja reads its text by accident
(they raise); every Python-level use reaches one of the methods below; the only str holding a marker is
output, which the sandbox either yields (the render's text) or joins in `concat` (turned back into a
TracedText here). Stopping is always safe: the caller renders the real chat instead.

    >>> from tokend.registry.chat.sandbox import compile_template, render_template, TemplateLimits
    >>> template = compile_template("{% for m in messages %}{% if 'x' in m.content %}X{% endif %}[{{ m.content|trim }}]{% endfor %}")
    >>> tracer = ContentTracer(["a x ", "b"], template)
    >>> text = render_template(template, {"messages": tracer.messages(["user", "user"])}, TemplateLimits(), tracer)
    >>> tracer.pieces(text)
    ['X[', (0, True), '][', (1, True), ']']
    >>> tracer.guards
    [(0, 'contains', 'x', True), (1, 'contains', 'x', False)]
"""

from __future__ import annotations

import re
import secrets
import sys
from typing import Any

__all__ = ["ContentTracer", "TracedText", "Untraceable", "guards_hold"]

# Tests whose answer is the same for every str (what a real content is): defined, a string, iterable, ...
_STR_TESTS = {
    "defined": True, "undefined": False, "none": False, "string": True, "mapping": False, "iterable": True,
    "sequence": True, "number": False, "integer": False, "float": False, "boolean": False, "true": False,
    "false": False, "callable": False,
}  # fmt: skip
# Tests that compare with `==` / `in` (which reach TracedText's own methods, recording guards).
_COMPARING_TESTS = frozenset({"eq", "equalto", "==", "ne", "!=", "in"})
_NONDETERMINISTIC_FILTERS = frozenset({"random"})
_PLANE_15 = 0xF0000  # private-use characters for the nonce and the content index


class Untraceable(Exception):
    """Raised inside a traced render where it cannot be followed (also recorded in `ContentTracer.stopped`, in
    case some code between the template and us catches it)."""


class ContentTracer:
    """One trace: the real contents (to answer questions), the guards recorded, the marker scheme."""

    def __init__(self, contents: list[str], compiled: Any) -> None:
        self.contents = contents  # the real contents of the chat being traced
        self.guards: list[tuple[int, str, Any, Any]] = []  # (message index, question, argument, answer)
        self.stopped: str | None = None  # why the trace cannot be followed, or None
        self.failure: Exception | None = None  # what a failed traced render raised (besides raise_exception)
        # The size bound (template_layout): over every traced value built, the most fixed characters, and the
        # most references to one content (any, as given, stripped).
        self.most_fixed = 0
        self.most_references = (0, 0, 0)
        self._namespace = compiled.template.root_render_func.__globals__  # the template's code runs here
        nonce = "".join(chr(_PLANE_15 + secrets.randbelow(0xFFFE)) for _ in range(4))
        self.nonce = nonce
        self._marker = re.compile(re.escape(nonce) + "(.)" + re.escape(nonce), re.S)

    # -- setting up ------------------------------------------------------------------------------------

    def messages(self, roles: list[str]) -> list[dict[str, Any]]:
        """The messages a traced render sees: each role as given, each content traced."""
        return [_TracedMessage(self, role, TracedText(self, ((index, False),))) for index, role in enumerate(roles)]

    def marker(self, index: int, strip: bool) -> str:
        return f"{self.nonce}{chr(_PLANE_15 + 2 * index + strip)}{self.nonce}"

    def pieces(self, text: str) -> list[str | tuple[int, bool]]:
        """A traced render's text as fixed text and (message index, stripped) content references."""
        pieces: list[str | tuple[int, bool]] = []
        position = 0
        for match in self._marker.finditer(text):
            if match.start() > position:
                pieces.append(text[position : match.start()])
            code = ord(match.group(1)) - _PLANE_15
            pieces.append((code // 2, bool(code % 2)))
            position = match.end()
        if position < len(text):
            pieces.append(text[position:])
        if any(type(piece) is str and self.nonce in piece for piece in pieces):
            self.stop("a marker was cut")
        return pieces

    def reference_at(self, text: str, position: int) -> tuple[int, bool]:
        """The (message index, stripped) of the marker starting at `position` of `text`."""
        code = ord(self._marker.match(text, position).group(1)) - _PLANE_15
        return code // 2, bool(code % 2)

    def marker_spans(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in self._marker.finditer(text)]

    # -- what the sandbox asks -------------------------------------------------------------------------

    def stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
        raise Untraceable(why)

    def ask(self, reference: Any, question: str, argument: Any) -> Any:
        """The real content's answer to `question`, recorded as a guard."""
        index, strip = reference
        content = self.contents[index]
        if strip:
            content = content.strip()
        answer = _answer(content, question, argument)
        self.guards.append((index if not strip else ~index, question, argument, answer))
        return answer

    def lookup(self, key: Any) -> None:
        """`x[key]` / `x.key`: a traced key would look up something that depends on the content."""
        if type(key) is TracedText:
            self.stop("content used as a key")

    def genuine_failure(self) -> bool:
        """Whether a failed traced render failed as the real chat would: an undefined value used (no traced
        value ever becomes undefined: lookups on or by content stop the trace)."""
        from jinja2.exceptions import UndefinedError

        return self.stopped is None and isinstance(self.failure, UndefinedError)

    def captured(self, text: str) -> Any:
        """Output captured into a value (`concat`): traced when it holds a content."""
        if self.nonce not in text:
            return text
        return self._traced(tuple(self.pieces(text)))

    def join(self, values: list[Any]) -> Any:
        """`a ~ b` with a traced operand: a TracedText (None: no traced operand, join as usual)."""
        if not any(type(value) is TracedText for value in values):
            return None
        pieces: list[Any] = []
        for value in values:
            if type(value) is TracedText:
                pieces += value._pieces
            else:
                text = str(value)
                if self.nonce in text:
                    self.stop("content inside a value joined with ~")
                pieces.append(text)
        return self._traced(tuple(pieces))

    def filter(self, name: str, args: tuple, kwargs: dict) -> tuple[bool, Any]:
        """(handled, result) for a filter call in a traced render."""
        if name in _NONDETERMINISTIC_FILTERS:
            self.stop(f"the {name!r} filter")
        traced = [value for value in (*args, *kwargs.values()) if type(value) is TracedText]
        if not traced:
            return False, None
        value = args[0] if args else None
        if type(value) is TracedText and len(traced) == 1 and not kwargs:
            if name == "string" and len(args) == 1 or name in ("default", "d") and len(args) <= 2:
                return True, value  # a str is its own string and is never undefined (without `boolean`, which asks its truth)
            if name == "trim" and (len(args) == 1 or args[1] is None):
                return True, value.strip()
        self.stop(f"content passed to the {name!r} filter")
        return False, None  # not reached

    def test(self, name: str, args: tuple, kwargs: dict) -> tuple[bool, Any]:
        """(handled, result) for a test in a traced render."""
        if not any(type(value) is TracedText for value in (*args, *kwargs.values())):
            return False, None
        if name in _COMPARING_TESTS:
            return False, None  # the test's `==` / `in` reaches TracedText, which records the guard
        if name in _STR_TESTS and len(args) == 1 and not kwargs:
            return True, _STR_TESTS[name]
        self.stop(f"content tested with {name!r}")
        return False, None  # not reached

    def _traced(self, pieces: tuple) -> TracedText:
        merged: list[Any] = []
        for piece in pieces:
            if type(piece) is str:
                if not piece:
                    continue
                if merged and type(merged[-1]) is str:
                    merged[-1] += piece
                    continue
            merged.append(piece)
        self.note_value(merged)
        return TracedText(self, tuple(merged))

    def note_value(self, pieces: Any) -> None:
        """Record the size parts of a value made of `pieces` (fixed text, (message index, stripped))."""
        fixed, whole, stripped = 0, {}, {}
        for piece in pieces:
            if type(piece) is str:
                fixed += len(piece)
            else:
                counts = stripped if piece[1] else whole
                counts[piece[0]] = counts.get(piece[0], 0) + 1
        any_kind = {index: whole.get(index, 0) + stripped.get(index, 0) for index in {*whole, *stripped}}
        most = self.most_references
        self.most_fixed = max(self.most_fixed, fixed)
        self.most_references = (
            max(most[0], max(any_kind.values(), default=0)),
            max(most[1], max(whole.values(), default=0)),
            max(most[2], max(stripped.values(), default=0)),
        )

    def is_template_code(self, frame: Any) -> bool:
        return frame.f_globals is self._namespace


def _answer(content: str, question: str, argument: Any) -> Any:
    if question == "contains":
        return argument in content
    if question == "startswith":
        return content.startswith(argument)
    if question == "endswith":
        return content.endswith(argument)
    if question == "eq":
        return content == argument
    if question == "bool":
        return bool(content)
    if question in ("strip", "lstrip", "rstrip"):  # does it change nothing?
        return getattr(content, question)(argument) == content
    raise ValueError(question)


def guards_hold(guards: tuple[tuple[int, str, Any, Any], ...], contents: list[str]) -> bool:
    """Whether `contents` answer every guard of a trace as the traced chat did."""
    for index, question, argument, answer in guards:
        content = contents[index] if index >= 0 else contents[~index].strip()
        if _answer(content, question, argument) != answer:
            return False
    return True


class _TracedMessage(dict):
    """A message of a traced render: a dict whose key order a template may not observe (a real message may
    list "content" before "role"), so iterating it stops the trace. Looking keys up is fine."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: ContentTracer, role: str, content: TracedText) -> None:
        super().__init__(role=role, content=content)
        self._tracer = tracer

    def _stop(self, *args: Any, **kwargs: Any) -> Any:
        self._tracer.stop("a message's keys iterated (their order is the caller's)")

    __iter__ = __reversed__ = __repr__ = keys = values = items = copy = _stop


def _text_argument(value: Any) -> bool:
    return isinstance(value, str) or (type(value) is tuple and value and all(isinstance(item, str) for item in value))


class TracedText:
    """A content (or text made from contents) inside a traced render. Not a str, on purpose: see module."""

    __slots__ = ("_tracer", "_pieces")

    def __init__(self, tracer: ContentTracer, pieces: tuple) -> None:
        self._tracer = tracer
        self._pieces = pieces  # fixed str and (message index, stripped) references

    # -- output -----------------------------------------------------------------------------------------

    def __str__(self) -> str:
        tracer = self._tracer
        if not tracer.is_template_code(sys._getframe(1)):  # only the template's own output may see the markers
            tracer.stop("content turned into a str outside the output")
        return "".join(piece if type(piece) is str else tracer.marker(*piece) for piece in self._pieces)

    def __add__(self, other: Any) -> TracedText:
        if type(other) is TracedText:
            return self._tracer._traced(self._pieces + other._pieces)
        if isinstance(other, str) and self._tracer.nonce not in other:
            return self._tracer._traced((*self._pieces, str(other)))
        self._tracer.stop("content added to a value that is not text")
        raise AssertionError  # not reached

    def __radd__(self, other: Any) -> TracedText:
        if isinstance(other, str) and self._tracer.nonce not in other:
            return self._tracer._traced((str(other), *self._pieces))
        self._tracer.stop("content added to a value that is not text")
        raise AssertionError  # not reached

    # -- questions (guards) -----------------------------------------------------------------------------

    def _reference(self, what: str) -> tuple[int, bool]:
        if len(self._pieces) == 1 and type(self._pieces[0]) is not str:
            return self._pieces[0]
        self._tracer.stop(f"{what} of text made from content")
        raise AssertionError  # not reached

    def __contains__(self, part: Any) -> bool:
        if not isinstance(part, str):
            self._tracer.stop("'in' content with a value that is not text")
        return self._tracer.ask(self._reference("'in'"), "contains", str(part))

    def __eq__(self, other: Any) -> Any:
        if type(other) is TracedText:
            self._tracer.stop("two contents compared")
        if not isinstance(other, str):
            return NotImplemented  # a str never equals a non-str: identity comparison gives False, as for a str
        return self._tracer.ask(self._reference("=="), "eq", str(other))

    def __ne__(self, other: Any) -> Any:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __bool__(self) -> bool:
        if any(type(piece) is str for piece in self._pieces):
            return True  # holds a non-empty fixed text: true for every content
        return self._tracer.ask(self._reference("truth"), "bool", None)

    def startswith(self, prefix: Any, *more: Any) -> bool:
        if more or not _text_argument(prefix):
            self._tracer.stop("startswith with positions or a non-text argument")
        return self._tracer.ask(self._reference("startswith"), "startswith", prefix)

    def endswith(self, suffix: Any, *more: Any) -> bool:
        if more or not _text_argument(suffix):
            self._tracer.stop("endswith with positions or a non-text argument")
        return self._tracer.ask(self._reference("endswith"), "endswith", suffix)

    def strip(self, chars: Any = None) -> TracedText:
        index, stripped = self._reference("strip")
        if chars is None:
            return self._tracer._traced(((index, True),))
        return self._unchanged("strip", chars)

    def lstrip(self, chars: Any = None) -> TracedText:
        return self._unchanged("lstrip", chars)

    def rstrip(self, chars: Any = None) -> TracedText:
        return self._unchanged("rstrip", chars)

    def _unchanged(self, method: str, chars: Any) -> TracedText:
        """`method(chars)` modelled as "changes nothing" (a guard); a content it changes stops the trace."""
        if chars is not None and not isinstance(chars, str):
            self._tracer.stop(f"{method} with a non-text argument")
        reference = self._reference(method)
        if not self._tracer.ask(reference, method, None if chars is None else str(chars)):
            self._tracer.stop(f"{method} that changes the content")
        return self

    # -- everything else stops the trace ----------------------------------------------------------------

    def _stop(self, *args: Any, **kwargs: Any) -> Any:
        self._tracer.stop("content used in a way a trace does not model")

    __repr__ = __format__ = __len__ = __iter__ = __getitem__ = __hash__ = _stop
    __lt__ = __le__ = __gt__ = __ge__ = _stop
    __mul__ = __rmul__ = __mod__ = __rmod__ = __int__ = __float__ = __index__ = __reversed__ = _stop

    def __getattr__(self, name: str) -> Any:
        # Any other attribute (split, upper, replace, ...) is not modelled; Jinja's sandbox would turn an
        # AttributeError into a lookup by item and then into undefined, so stop here instead.
        self._tracer.stop(f"content.{name}")
