"""The size of what a chat template builds: estimated before an operation that multiplies data runs, and
checked again on every result, against the render's budget (template_budget).

- `estimate(value, cap)`: the characters `str(value)` would take, counting every reference to a shared
  string (a list of 1,000 references to one long string counts as 1,000 strings), each container once;
- `check_value` / `check_built`: a value within `max_chars` (an integer within `MAX_INT_BITS`), and a large
  value the template made counted while it lives (`RenderBudget.hold`, `max_held_bytes`);
- `check_printed`: every `{{ value }}` sized before it is turned into text;
- `check_format_spec` / `check_int_arguments`: `{:>99999999}`-style widths and size-like integer arguments,
  before they allocate.

    >>> estimate(["ab", "ab"], cap=10**6)  # two strings of 2, each with its quotes and separator
    10
    >>> estimate(7, cap=10**6)
    24
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, MappingView
from typing import Any

from jinja2.utils import Namespace

from tokend.registry.chat.template_budget import HELD_MIN_CHARS, LimitExceeded, current_budget, format_count
from tokend.registry.chat.template_trace import TracedText

__all__ = [
    "MAX_INT_BITS",
    "SIZED",
    "check_built",
    "check_format_spec",
    "check_int",
    "check_int_arguments",
    "check_printed",
    "check_value",
    "estimate",
]


def estimate(value: Any, cap: int) -> int:
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
            current_budget().tick()
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


# The values `estimate` sizes by their contents; any other prints short.
SIZED = (str, list, tuple, dict, set, frozenset, Namespace, MappingView)

# Python's integer arithmetic is one C call holding the GIL: `2**24000000 // (2**12000000 + 1)` runs for
# minutes. At 2**16 bits (~19,700 digits; Python itself prints no more than 4,300) the slowest operation,
# a division, takes milliseconds, and no chat template comes near it.
MAX_INT_BITS = 1 << 16


def check_int(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        raise LimitExceeded("size_limit", f"the chat template would build {what}: an integer of about {format_count(bits)} bits (limit {MAX_INT_BITS:,} bits)")


def check_value(value: Any, what: str) -> Any:
    budget = current_budget()
    if isinstance(value, SIZED):
        budget.size(estimate(value, budget.max_chars), what)
    elif isinstance(value, int):
        check_int(value.bit_length(), what)
    return value


def check_built(value: Any, what: str) -> Any:
    """A value the template made (a result of a filter, call, operator, join or slice): checked as
    `check_value` does and, when large, counted while it lives (`RenderBudget.hold`, `max_held_bytes`): a
    string by its memory (1, 2 or 4 bytes a character), a list, tuple or dict by its items' characters (each
    value is within max_chars, but 30 strings of 16 M emoji held 1.8 GB)."""
    budget = current_budget()
    if isinstance(value, str):
        chars = len(value)
        budget.size(chars, what)
        if chars >= HELD_MIN_CHARS:
            budget.hold(value, sys.getsizeof(value), what)
    elif isinstance(value, SIZED):
        chars = estimate(value, budget.max_chars)
        budget.size(chars, what)
        if chars >= HELD_MIN_CHARS:
            budget.hold(value, chars, what)
    elif isinstance(value, int):
        check_int(value.bit_length(), what)
    return value


def check_printed(value: Any) -> Any:
    """Every `{{ value }}` before it is turned into text (the environment's `finalize`): a container is sized
    first, so one that references itself many times over is refused instead of printed."""
    if isinstance(value, SIZED) and not isinstance(value, str):
        check_value(value, "output")
    return value


_FORMAT_FIELD = re.compile(r"\{[^{}]*\}|%[^a-zA-Z%]*[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def check_format_spec(text: str, what: str) -> None:
    """Refuse `{:>99999999}` / `%099999999d`-style widths before they allocate."""
    budget = current_budget()
    for field in _FORMAT_FIELD.findall(text):
        for digits in _DIGITS.findall(field):
            if len(digits) > 12 or int(digits) > budget.max_chars:
                budget.size(int(digits[:13]), what)


def check_int_arguments(args: tuple, kwargs: Mapping[str, Any], what: str) -> None:
    """Refuse an integer argument past `max_chars` (a width, a count) before the call allocates that much."""
    budget = current_budget()
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and value > budget.max_chars:
            budget.size(value, what)
