"""The bounds of one filter call of a chat template, and the wrappers that keep every filter and test of the
environment within them (`bounded_filter`, `bounded_test`).

One filter call is one step between hooks: the deadline is not checked inside it, so the value it works
through is bounded before it runs (`_ELEMENT_LIMITS`: 1 Mi items, 256 Ki for the sorting ones;
`_CHARACTER_LIMITS` for the string filters that are Python code per word or character; lines for `indent`,
length² / width for `wordwrap`), so that no call takes more than ~0.5 s or ~256 MiB. A filter reading items
one by one reads a long or lazy value through an iterator that counts them and checks the deadline, and
every test checks it (`select('in', long_text)` over 1,000 items took 13 s). A filter that can multiply
its value (`_GROWING_FILTERS`) has its result estimated before it runs (template_sizes); every result is
checked after. The str methods `split`, `rsplit` and `splitlines` are held to the same element cap: past
MAX_ELEMENTS characters their pieces are counted first (`most_pieces`, `str.count`).

    >>> most_pieces("a,b,c", "split", (",",), {}), most_pieces("a,b,c", "rsplit", (",", 1), {})
    (3, 2)
    >>> most_pieces("a b c", "split", (), {})  # whitespace runs, not counted in a short text: a bound
    4
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tokend.registry.chat.template_budget import LOOP_TICK_ITEMS, RENDER_BUDGET, LimitExceeded, RenderBudget, current_budget, format_count
from tokend.registry.chat.template_sizes import check_built, check_format_spec, check_int_arguments, estimate

__all__ = ["MAX_ELEMENTS", "MAX_SORTED_ELEMENTS", "SPLITTING_METHODS", "bounded_filter", "bounded_test", "most_pieces"]

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


def bounded_filter(name: str, function: Any) -> Any:
    """Every filter: deadline, size-like integer arguments, the size of the value it works through, an
    estimate for the ones that multiply, result."""
    # pass_context / pass_eval_context / pass_environment filters get that first, then their value.
    first = 1 if hasattr(function, "jinja_pass_arg") else 0
    element_limit = _ELEMENT_LIMITS.get(name)
    iterating = name in _ITERATING_FILTERS
    character_limit = _CHARACTER_LIMITS.get(name)

    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.tick()
        if budget.tracer is not None:  # a traced render: the tracer models this filter on traced content, or stops
            handled, result = budget.tracer.filter(name, args, kwargs)
            if handled:
                return result
        check_int_arguments(args[first + 1 :], kwargs, f"the result of the {name!r} filter")
        if len(args) <= first:
            return check_built(function(*args, **kwargs), f"the result of the {name!r} filter")
        value = args[first]
        length = _length(value)
        if element_limit is not None:
            counted = _elements_within(value, element_limit, name, iterating, budget)
            if counted is not value:
                if name in _ASIDE_FILTERS and not length:  # a lazy value to sort: read (with hooks) before the sort
                    counted = list(counted)
                    length = len(counted)
                args = (*args[:first], counted, *args[first + 1 :])
        elif character_limit is not None and isinstance(value, str) and len(value) > character_limit:
            _refuse_filter(name, f"{len(value):,} characters", f"{character_limit:,} characters")
        if name in _GROWING_FILTERS:
            estimated = estimate(value, budget.max_chars)
            if name == "indent":
                width = args[1] if len(args) > 1 else kwargs.get("width", 4)
                width_chars = width if isinstance(width, int) else len(str(width))
                lines = value.count("\n") + 1 if isinstance(value, str) else 1
                if lines > _INDENT_LINES:
                    _refuse_filter(name, f"{lines:,} lines", f"{_INDENT_LINES:,} lines")
                budget.size(estimated + width_chars * lines, f"the result of the {name!r} filter")
            elif name == "replace" and isinstance(value, str) and len(args) > first + 2:
                old, new = str(args[first + 1]), str(args[first + 2])
                growth = (value.count(old) if old else len(value) + 1) * max(0, len(new) - len(old))
                budget.size(estimated + growth, f"the result of the {name!r} filter")
            elif name == "format" and isinstance(value, str):
                check_format_spec(value, "the result of the 'format' filter")
                budget.size(estimated + sum(estimate(arg, budget.max_chars) for arg in args[1:]), "a string")
            elif name == "join" and isinstance(value, str):  # a string's characters with the separator between
                separator = args[first + 1] if len(args) > first + 1 else kwargs.get("d", "")
                budget.size(estimated + len(str(separator)) * len(value), f"the result of the {name!r} filter")
            elif name == "wordwrap" and isinstance(value, str):
                width = args[first + 1] if len(args) > first + 1 else kwargs.get("width", 79)
                if isinstance(width, int) and len(value) ** 2 // max(1, width) > _WORDWRAP_WORK:
                    work = f"{_WORDWRAP_WORK:,} for length² / width"
                    _refuse_filter(name, f"{len(value):,} characters at width {width}", work)
                budget.size(estimated, f"the result of the {name!r} filter")
            elif name == "pprint" and estimated > _PPRINT_CHARS:
                _refuse_filter(name, f"about {format_count(estimated)} characters", f"{_PPRINT_CHARS:,} characters")
            elif name in _SERIALISING_FILTERS:
                budget.size(estimated, f"the result of the {name!r} filter")
        if name in _ASIDE_FILTERS and length > ASIDE_MIN_LENGTH:  # no hook inside: others' renders go on meanwhile
            with budget.turn_set_aside():
                result = function(*args, **kwargs)
        else:
            result = function(*args, **kwargs)
        if result is value:  # `trim` of a string with nothing to trim, `default` of a defined value: not made here
            return result
        return check_built(result, f"the result of the {name!r} filter")

    bounded.__name__ = getattr(function, "__name__", name)
    _keep_jinja_marker(function, bounded)
    return bounded


# The filters that are Python code an item or a word at a time with no hook inside (the string filters of
# _CHARACTER_LIMITS, pprint, and the sorts after they read their value) run without the process's render turn
# when their value is longer than ASIDE_MIN_LENGTH (template_budget.turn_set_aside): one such call may take
# ~0.5 s (the bounds above; a `sort` of 256 Ki strings 0.5-0.9 s), which every other render would otherwise
# wait for whole. Not below it (a call of a few ms at most; taking the turn back costs a wait behind every
# render queued meanwhile, once a call), nor the filters that hold the GIL throughout (`trim`, `replace`,
# `join`, ...: nothing else runs meanwhile anyway), nor those that read their value through hooks.
_ASIDE_FILTERS = frozenset(_CHARACTER_LIMITS) | {"pprint", "sort", "groupby", "dictsort", "xmlattr"}
ASIDE_MIN_LENGTH = 16384


def _length(value: Any) -> int:
    try:
        return len(value)
    except Exception:  # no length (a number, None): a short step
        return 0


def _elements_within(value: Any, limit: int, name: str, iterating: bool, budget: RenderBudget) -> Any:
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


def _counting(iterable: Any, limit: int, name: str, budget: RenderBudget) -> Any:
    count = 0
    for item in iterable:
        count += 1
        if not count % LOOP_TICK_ITEMS:
            budget.tick()
            if count > limit:
                _refuse_filter(name, f"more than {limit:,} items", f"{limit:,} items")
        yield item


def _refuse_filter(name: str, amount: str, limit: str) -> None:
    raise LimitExceeded("size_limit", f"the chat template gave the {name!r} filter {amount} (limit {limit} for one call)")


def bounded_test(name: str, function: Any) -> Any:
    """Every test: the deadline checked; in a traced render, the tracer answers it for traced content (or
    stops the trace)."""

    def traced(*args: Any, **kwargs: Any) -> Any:
        budget = RENDER_BUDGET.get()
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
    _keep_jinja_marker(function, traced)
    return traced


def _keep_jinja_marker(function: Any, wrapper: Any) -> None:
    # Keep Jinja's pass_context / pass_eval_context / pass_environment marker, so it passes the same arguments.
    if hasattr(function, "jinja_pass_arg"):
        wrapper.jinja_pass_arg = function.jinja_pass_arg


# A str method making a list of new strings: 16 M characters of "ab cd " split into 5.4 M strings took +382 MiB
# before the result could be sized. Past MAX_ELEMENTS characters, the pieces are counted first (`str.count`).
SPLITTING_METHODS = frozenset({"split", "rsplit", "splitlines"})
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # what splitlines splits at ("\r\n" counted twice)
# What split() splits at (str.isspace()): in ASCII text, and the others
_WHITESPACE = "\t\n\v\f\r \x1c\x1d\x1e\x1f"
_WHITESPACE_WIDE = (
    "\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def most_pieces(text: str, name: str, args: tuple, kwargs: Mapping[str, Any]) -> int:
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
