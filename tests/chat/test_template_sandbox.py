"""Chat templates are code from the registry: the sandbox, its time and size limits, each with a test.

Every limit must stop the render with a ChatTemplateError naming the reason, within a bound of the limit,
and leave the process able to serve the next request.
"""

from __future__ import annotations

import time

import pytest

from tokend.errors import ChatTemplateError, ModelFormatError
from tokend.registry.chat.sandbox import TemplateLimits, compile_template, render_template

# Renders that must end for another reason than time (output, a size, a refusal) get a minute: at 0.3 s, a
# 10 MB loop stopped at 1,000,000 characters (67 ms here) was refused "time_limit" once the machine gave the
# test less than a fifth of a core. Templates that never end get SPIN_LIMITS, the limit they are to reach.
LIMITS = TemplateLimits(seconds=60.0, max_chars=1_000_000)
SPIN_LIMITS = TemplateLimits(seconds=0.3, max_chars=1_000_000)


def _render(source: str, limits: TemplateLimits = LIMITS, **variables):
    return render_template(compile_template(source), variables, limits)


def _refused(source: str, reason: str, limits: TemplateLimits = LIMITS, **variables) -> ChatTemplateError:
    started = time.perf_counter()
    with pytest.raises(ChatTemplateError) as caught:
        _render(source, limits, **variables)
    assert caught.value.reason == reason, caught.value
    assert time.perf_counter() - started < SPIN_LIMITS.seconds + 2.0  # generous: shared cores
    return caught.value


def test_an_unsafe_attribute_that_is_only_printed_renders_empty():
    # Jinja's sandbox answers an unsafe attribute with an Undefined that raises only when used further.
    assert _render("{{ messages.__class__ }}", messages=[]) == ""


def test_transformers_helpers_render():
    source = (
        "{% for m in messages %}{{ m.role }}:{{ m.content|trim }}|{% endfor %}{{ tools|tojson }}"
        "{% generation %}G{% endgeneration %}{% for i in range(5) %}{% if i == 2 %}{% break %}{% endif %}{{ i }}{% endfor %}"
        "{{ {'é': '<b>'}|tojson(indent=1) }}{{ strftime_now('%Y')|length }}"
    )
    assert _render(source, messages=[{"role": "user", "content": " hi "}], tools=[{"a": 1}]) == (
        'user:hi|[{"a": 1}]G01{\n "é": "<b>"\n}4'
    )


def test_raise_exception_keeps_the_templates_message():
    error = _refused("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}", "raised")
    assert "Conversation roles must alternate user/assistant" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__name__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ messages.append(1) }}",
        "{{ messages[0].update({'role': 'system'}) }}",
        "{{ raise_exception.__globals__['json'] }}",
    ],
)
def test_attribute_escapes_and_mutation_are_forbidden(source):
    _refused(source, "security", messages=[{"role": "user"}])


@pytest.mark.parametrize(
    "source",
    [
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",  # no output at all
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ '' }}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% for i in range(100000) %}{{ f(n) if n > 10**9 }}{% endfor %}{% endmacro %}{% for k in range(100000) %}{{ f(k) }}{% endfor %}",
    ],
)
def test_a_template_that_loops_forever_is_stopped_at_the_deadline(source):
    error = _refused(source, "time_limit", SPIN_LIMITS)
    assert "longer than 0.3 s" in str(error)


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'a' * 10**9 }}",  # 1 GB in one operation: refused before it allocates
        "{{ 'a'|center(10**9) }}",
        "{{ 'a'.ljust(10**9) }}",
        "{{ '%0999999999d' % 1 }}",
        "{{ '{:>999999999}'.format(1) }}",
        "{{ 'a\nb'|indent(600000) }}",
        "{{ ('x' * 1000)|replace('x', 'y' * 10000) }}",
        "{% set l = ['x' * 900000] * 1000 %}{{ l|join }}",
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",  # doubling
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",  # 10 MB of output, 100 bytes at a time
        "{% set x %}{% for i in range(10000) %}{{ 'y' * 200 }}{% endfor %}{% endset %}{{ x|length }}",
        "{{ 7 ** 10000000 }}",
        "{{ [messages] * 10**8 }}",
    ],
)
def test_a_template_that_renders_too_much_is_stopped_before_it_allocates(source):
    error = _refused(source, "size_limit", messages=[])
    assert "limit 1,000,000" in str(error)


def test_errors_inside_a_template_are_chat_template_errors():
    assert "UndefinedError" in str(_refused("{{ x.y.z }}", "failed"))
    assert "ZeroDivisionError" in str(_refused("{{ 1 // 0 }}", "failed"))
    assert "recursed" in str(_refused("{% macro f(n) %}{{ f(n+1) }}{% endmacro %}{{ f(0) }}", "failed"))


def test_a_template_that_does_not_compile_is_a_model_format_error():
    with pytest.raises(ModelFormatError, match="line 1"):
        compile_template("{% for m in messages %}")


def test_limits_are_per_render_and_the_next_render_works():
    _refused("{{ 'a' * 10**9 }}", "size_limit")
    assert _render("{{ 'ok' * 3 }}") == "okokok"


@pytest.mark.parametrize(
    "source",
    [
        "{{ 2**1500000 // (2**750000 + 1) }}",  # one C division holding the GIL for seconds
        "{{ 2**1500000 % (2**750000 + 1) }}",
        "{% set ns = namespace(x=1) %}{% set ns.x = 3**30000 %}{% for i in range(12) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    ],
)
def test_integer_arithmetic_is_bounded_before_it_runs(source):
    error = _refused(source, "size_limit")
    assert "bits" in str(error)


def test_ordinary_integer_arithmetic_still_works():
    assert _render("{{ 2**100 // 3 }} {{ 10**30 % 7 }} {{ (2**60) * (2**60) }}") == f"{2**100 // 3} {10**30 % 7} {2**120}"


@pytest.mark.parametrize(
    "source",
    [
        # A list holding the previous list twice: 40 small objects whose printed form would double each time.
        "{% set ns = namespace(x=['a']) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}{{ ns.x }}",
        "{% set ns = namespace(x=['a'], y=['a']) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}"
        "{% set ns.y = [ns.y, ns.y] %}{% endfor %}{{ ns.x == ns.y }}",  # comparing two of them
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = (ns.x, ns.x) %}{% endfor %}",
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = {'k': ns.x, 'v': ns.x} %}{% endfor %}",
        "{% set ns = namespace(x='a') %}{% for i in range(40) %}{% set ns.x = namespace(a=ns.x, b=ns.x) %}{% endfor %}{{ ns.x }}",
        "{% set ns = namespace(x={'a': 1}) %}{% for i in range(40) %}{% set ns.x = dict(a=ns.x.items(), b=ns.x.items()) %}{% endfor %}{{ ns.x }}",
    ],
)
def test_values_that_reuse_themselves_are_sized_by_what_they_print(source):
    error = _refused(source, "size_limit")
    assert "limit 1,000,000" in str(error)


@pytest.mark.parametrize("source", ["{{ lipsum(n=200000) }}", "{{ lipsum(n=16000000) }}", "{{ lipsum(1, False, 5, 10**8) }}"])
def test_lipsum_is_bounded(source):
    _refused(source, "size_limit")


def test_lipsum_still_renders_paragraphs():
    text = _render("{{ lipsum(2, False, 5, 9) }}")
    assert text.count("\n\n") == 1 and text.endswith(".")
    assert _render("{{ lipsum(1) }}").startswith("<p>")


def test_a_views_items_are_each_sized():
    # dict views make their (key, value) pairs as they are read; a pair freed and the next made at its address
    # (CPython reuses a freed tuple's memory at once) must not take its size: sized once per object, not per id
    from tokend.registry.chat.template_sizes import estimate

    pairs = {"a": 1, "b": "x" * 1000, "c": "y" * 5000}.items()
    assert estimate(pairs, 10**9) > 6000


@pytest.mark.parametrize(
    "source",
    [
        "{% set s = 'a' * 20000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",  # strings
        "{% set s = 'a' * 20000 %}{% for a in s %}{% for b in s if b == 'x' %}{% endfor %}{% endfor %}",  # a loop filter
        "{% set s = 'a' * 20000 %}{% for a in s %}{% for b in s %}{{ loop.index if false }}{% endfor %}{% endfor %}",  # `loop`
        "{% set l = ('a' * 20000)|list %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",  # lists
        "{% for a in range(20000) %}{% for b in range(20000) %}{% endfor %}{% endfor %}",
        "{% set l = ('a' * 20000)|list %}{% for a in [l, l] recursive %}{% if a is not string %}{{ loop(a) }}{% endif %}"
        "{% for b in l %}{% endfor %}{% endfor %}",  # recursive loops
    ],
)
def test_loops_with_empty_bodies_stop_at_the_deadline(source):
    # Nested loops whose bodies reach no other hook: the deadline was checked only after them (7 s of CPU here).
    started = time.process_time()
    error = _refused(source, "time_limit", SPIN_LIMITS)
    assert "longer than 0.3 s" in str(error)
    assert time.process_time() - started < 2.0  # generous; 7 s before the loops' iterables were checked


def test_loops_still_iterate_every_kind_of_iterable():
    source = (
        "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}{{ v }}{% endfor %}|{% for c in 'xyz' %}{{ loop.index }}{{ c }}{% endfor %}|"
        "{% for i in range(2000) if i % 500 == 0 %}{{ i }},{{ loop.last }};{% endfor %}|{% for x in [] %}{% else %}E{% endfor %}|"
        "{% for x in [[1, [2]], 3] recursive %}{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}"
    )
    assert _render(source) == "a1b2|1x2y3z|0,False;500,False;1000,False;1500,True;|E|123"


def test_a_render_busy_threads_keep_off_the_cpu_stops_at_its_wall_clock_bound_or_a_hard_deadline():
    """A template that spins holds a handler thread: its limit is CPU time, and its wall time is bounded too
    (`wall_seconds`, 4 × `seconds` unless set), also when busy threads leave it a fraction of the interpreter
    (bounded by CPU time alone, 8 such templates at once held a worker's 8 threads ~8 s each). A hard deadline
    (the call's) sooner than either stops it there."""
    import threading

    spin = compile_template("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    threads = [threading.Thread(target=busy) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for limits in [TemplateLimits(seconds=30, wall_seconds=1.0), TemplateLimits(seconds=0.25),
                       TemplateLimits(seconds=30, hard_deadline=time.monotonic() + 1.0)]:
            started = time.monotonic()
            with pytest.raises(ChatTemplateError) as caught:
                render_template(spin, {}, limits)
            assert caught.value.reason == "time_limit"
            assert time.monotonic() - started < 2.5  # ~1 s; 30 s of CPU beside 3 busy threads would be ~2 minutes
    finally:
        stop.set()
        for thread in threads:
            thread.join()

# Content reaching a template can be ~8 MB (max_request_bytes); a template can build 16 Mi characters itself.
LARGE_VALUES = {
    "s": "ab cd " * 700_000,  # 4.2 M characters
    "w": "\U0001f600" * 120_000,  # one long word
    "tags": "<a>" * 1_000_000,
    "lines": "\n" * 5_000_000,
    "d": dict.fromkeys(map(str, range(300_000)), 1),
    "numbers": list(range(1_000_000)),
    "m": "a" * 1_000_000,
}


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("{{ s|sort }}", "sort"),  # 6.4 s and +631 MiB in one call before
        ("{{ s|select('equalto', 'a')|list }}", "select"),
        ("{{ s|reject('equalto', 'a')|list }}", "reject"),
        ("{{ s|list|map('upper')|list }}", "list"),
        ("{{ s|unique|list }}", "unique"),
        ("{{ s|groupby(0) }}", "groupby"),
        ("{{ s|batch(2)|list }}", "batch"),
        ("{{ s|min }}", "min"),
        ("{{ s|join(',') }}", "join"),
        ("{{ m|join('-' * 20) }}", "join"),  # within the item cap, its result 21 M characters: sized before
        ("{{ s|urlize }}", "urlize"),
        ("{{ s|wordwrap }}", "wordwrap"),
        ("{{ s|title }}", "title"),
        ("{{ s|urlencode }}", "urlencode"),
        ("{{ s|wordcount }}", "wordcount"),
        ("{{ s|pprint }}", "pprint"),
        ("{{ tags|striptags }}", "striptags"),
        ("{{ lines|indent }}", "indent"),
        ("{{ w|wordwrap(1) }}", "wordwrap"),  # a long word cut at width 1: quadratic (130 s for 1 M emoji)
        ("{{ d|dictsort }}", "dictsort"),
        ("{{ numbers|select|sort }}", "sort"),  # a generator: counted as it is read
        ("{{ s.split() }}", "split()"),  # str methods making lists of new strings (+382 MiB for 16 M characters)
        ("{{ s.rsplit(' ') }}", "rsplit()"),
        ("{{ lines.splitlines() }}", "splitlines()"),
    ],
)
def test_one_filter_call_on_a_large_value_is_refused_before_it_runs(source, name):
    started = time.process_time()
    error = render_error(source, seconds=5.0, **LARGE_VALUES)  # refused on size, not time, on a busy machine
    assert error.reason == "size_limit", error
    assert (f"the {name!r} filter" if name.isalpha() else f"with {name}") in str(error) and "limit" in str(error)
    assert time.process_time() - started < 2.0  # generous; seconds (up to 130 s) in one call before


@pytest.mark.parametrize(
    "source",
    [
        # one test per item, each scanning a long string: no hook between the items (4 s before)
        "{{ (range(1000)|map('string')|list)|select('in', s)|list }}",
        "{{ l|sum(start=[]) }}",  # quadratic concatenation inside one sum() (10 s for 100,000 lists before)
    ],
)
def test_one_filter_call_with_slow_items_stops_at_the_deadline(source):
    started = time.process_time()
    error = render_error(source, seconds=SPIN_LIMITS.seconds, s="a" * 4_000_000, l=[[1]] * 100_000)
    assert error.reason == "time_limit", error
    assert time.process_time() - started < 2.0


def render_error(source: str, seconds: float, **variables) -> ChatTemplateError:
    # The default size limit (16 Mi characters), which every result of these calls is within.
    with pytest.raises(ChatTemplateError) as caught:
        render_template(compile_template(source), variables, TemplateLimits(seconds=seconds))
    return caught.value


@pytest.mark.parametrize(
    "source",
    [
        "{{ items|sort|join(',') }}", "{{ items|sort(reverse=true)|first }}", "{{ items|select('odd')|list|length }}",
        "{{ items|reject('odd')|sum }}", "{{ items|map('string')|unique|list|length }}", "{{ items|min }},{{ items|max }}",
        "{{ items|batch(7)|list|length }}", "{{ items|slice(3)|map('length')|join(',') }}", "{{ items|reverse|list|last }}",
        "{{ text|list|length }}", "{{ text|unique|join }}", "{{ text|sort|first }}", "{{ text|join('-')|length }}",
        "{{ text|title|length }}", "{{ text|wordwrap(10)|length }}", "{{ text|urlize|length }}", "{{ text|wordcount }}",
        "{{ dicts|groupby('k')|map(attribute='grouper')|join(',') }}", "{{ dicts|selectattr('k', 'equalto', 3)|list|length }}",
        "{{ dicts|map(attribute='k')|sum }}", "{{ mapping|dictsort|first }}", "{{ mapping|items|list|length }}",
        "{{ (items|map('string'))|join(',')|length }}", "{{ ''|list }}{{ nothing|default([])|sort }}",
        "{{ long.split()|length }},{{ long.split(' ', 1)|last }},{{ long.rsplit('x', 2)|length }},{{ long.splitlines()|length }}",
        "{{ long_words.split()|length }},{{ long_words.split(none, 3)|length }},{{ long_words.split(' ')|length }}",
        "{{ none|selectattr('x')|list }}{{ none|map('upper')|list }}{{ nothing|sort }}",  # functionary v3.1: `tools|...` of None
    ],
)
def test_filters_over_a_few_thousand_items_give_jinjas_results(source):
    # Past LOOP_TICK_ITEMS items a filter reads its value through a counting iterator: the result is Jinja's.
    import jinja2

    variables = {
        "items": [(i * 7919) % 3001 for i in range(3000)], "text": "Hello world, see https://example.com now. " * 100,
        "dicts": [{"k": i % 5} for i in range(2500)], "mapping": {f"k{i}": i for i in range(2000)},
        "long": "x" * 3_000_000 + " y", "long_words": "wörd\u3000" * 300_000,  # past MAX_ELEMENTS: pieces counted first
    }  # fmt: skip
    rendered = render_template(compile_template(source), variables, TemplateLimits(seconds=60.0))  # results, not time, are tested here
    assert rendered == jinja2.Environment().from_string(source).render(**variables)


HELD_LIMITS = TemplateLimits(seconds=5.0, max_chars=1_000_000, max_held_bytes=8_000_000)


@pytest.mark.parametrize(
    "source",
    [
        # many values, each within max_chars, held at once: 40 of 900,000 characters (16 Mi each by default: ~2 GB)
        "".join(f"{{% set v{i} = s ~ '{i}' %}}" for i in range(40)) + "{{ v0|length + v39|length }}",
        "{% macro f(n, t) %}{% if n %}{{ f(n - 1, t ~ 'x') }}{% endif %}{% endmacro %}{{ f(40, s) }}",  # a frame each
        "{% set ns = namespace() %}" + "".join(f"{{% set ns.a{i} = s ~ '{i}' %}}" for i in range(40)),
        "{% set parts = t.split('|') %}" + "".join(f"{{% set l{i} = parts|map('upper')|list %}}" for i in range(40)),  # lists
    ],
)
def test_the_values_a_render_holds_together_are_bounded(source):
    with pytest.raises(ChatTemplateError) as caught:
        render_template(compile_template(source), {"s": "x" * 900_000, "t": ("x" * 8191 + "|") * 110}, HELD_LIMITS)
    assert caught.value.reason == "size_limit", caught.value
    assert "limit 8,000,000 bytes for one render" in str(caught.value)


def test_values_let_go_are_not_held():
    # A string grown a message at a time (Reka-Edge's template: `ns.out ~ text`) makes 160 M characters in
    # all over 400 messages, but holds one of them at a time.
    source = "{% set ns = namespace(out='') %}{% for m in messages %}{% set ns.out = ns.out ~ m %}{% endfor %}{{ ns.out|length }}"
    assert render_template(compile_template(source), {"messages": ["y" * 2000] * 400}, HELD_LIMITS) == "800000"


def test_the_split_piece_count_knows_every_separator_python_splits_at():
    # `most_pieces` is an upper bound only if it counts every character split() and splitlines() split at.
    import sys

    from tokend.registry.chat.template_filters import _LINE_BREAKS, _WHITESPACE, _WHITESPACE_WIDE, most_pieces

    characters = [chr(code) for code in range(sys.maxunicode + 1)]
    assert sorted(_WHITESPACE + _WHITESPACE_WIDE) == [c for c in characters if c.isspace()]
    assert sorted(_LINE_BREAKS) == [c for c in characters if len(f"a{c}b".splitlines()) == 2]
    text = "a\u3000b\tc\r\nd\x85e" * 1000
    assert most_pieces(text, "split", (), {}) >= len(text.split())
    assert most_pieces(text, "splitlines", (), {}) >= len(text.splitlines())
    assert most_pieces(text, "rsplit", ("\t", 3), {}) == 4


@pytest.mark.parametrize(
    "source",
    [
        "{% if a %}" * 200 + "x" + "{% endif %}" * 200,  # Python's compiler: too many levels of indentation
        "{% for a in b %}" * 300 + "x" + "{% endfor %}" * 300,
        "{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}",  # Jinja's parser: RecursionError
    ],
    ids=["if-200-deep", "for-300-deep", "parentheses-5000-deep"],
)
def test_a_template_nested_too_deeply_to_compile_is_a_model_format_error(source):
    """They escaped as IndentationError / RecursionError: a traceback from `tokend registry chat-format
    --chat-template FILE` and from a GGUF import, instead of the one line naming the problem."""
    with pytest.raises(ModelFormatError, match="nested too deeply"):
        compile_template(source)


def test_a_template_longer_than_any_real_one_by_far_is_refused_before_it_is_compiled():
    """Compiling costs up to ~1 KB of memory a character (20,000 macros in 829 KB: 24 s and +743 MiB, in each
    worker and the playground); the cap was 1,000,000 characters. The largest real template is 16.7 KB."""
    from tokend.registry import chat_format_from_template

    chat_format_from_template("{{ messages }}" + "x" * (128 * 1024 - 14))  # at the cap: accepted
    with pytest.raises(ModelFormatError, match="131,073 characters"):
        chat_format_from_template("{{ messages }}" + "x" * (128 * 1024 - 13))


def test_the_quick_lookups_answer_as_jinjas_sandbox_does():
    """`ChatTemplateEnvironment.getattr` answers a plain dict's keys, a plain str's methods and a namespace's
    data without Jinja's detours (a 10,000-message Qwen3 render 0.28 -> 0.18 s): every answer is the one
    Jinja's ImmutableSandboxedEnvironment gives, unsafe and missing attributes included."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from jinja2.utils import Namespace

    from tokend.registry.chat import sandbox
    from tokend.registry.chat.template_budget import RENDER_BUDGET, RenderBudget

    import collections

    import markupsafe

    class Text(str):  # a str subclass (Markup is one): its methods are its own, not str's
        lower = str.format  # found as `lower`, but str.format: the sandbox wraps it

        def upper(self) -> str:
            return "overridden"

    class Record(dict):  # a dict subclass: its attributes come before its keys
        role = "the attribute"

    ours, jinjas = sandbox._ENVIRONMENT, ImmutableSandboxedEnvironment()
    data = {"content": "x", "items": "shadowed", "keys": 1, "_private": 2, "__class__": 3, "role": None, "ünï": 4,
            "update": 5, "mro": 6}
    namespace = Namespace(n=1, s="text", items=[1], f="{}".format, method="ab".upper, obj=object(), none=None,
                          cls=str, markup=markupsafe.Markup("<b>"), text=Text("t"), ns=Namespace(n=2), data=data)
    objects = [data, "a text", namespace, ["list"], 7, sandbox._MISSING, Namespace(), markupsafe.Markup("<i>{0}</i>"),
               Text("sub"), str, collections.OrderedDict(role="r"), Namespace(_private=1), Record(role="the key")]
    names = ["content", "items", "keys", "get", "_private", "__class__", "role", "missing", "startswith", "format",
             "format_map", "upper", "__len__", "_Namespace__attrs", "n", "s", "f", "method", "obj", "none", "append", "mro",
             "ünï", "update", "cls", "markup", "text", "ns", "data", "__mro__", "__subclasses__", "__init__", "join",
             "maketrans", "escape", "__html__", "lower"]

    def same(mine, theirs) -> bool:
        if type(mine) is not type(theirs):
            return False
        if callable(theirs) and hasattr(theirs, "__self__"):  # bound methods: equal owner and name
            return mine.__self__ is theirs.__self__ and mine.__name__ == theirs.__name__
        if type(theirs).__name__ == "function":  # str.format wrapped by the sandbox: made anew each time
            return mine.__qualname__ == theirs.__qualname__ and mine.__wrapped__ == theirs.__wrapped__  # type: ignore[attr-defined]
        if hasattr(theirs, "_undefined_name"):  # Undefined: the same kind (missing, or unsafe: a SecurityError when used)
            return ((mine._undefined_name, mine._undefined_obj is theirs._undefined_obj, mine._undefined_exception,
                     mine._undefined_hint) == (theirs._undefined_name, True, theirs._undefined_exception, theirs._undefined_hint))
        return mine is theirs or mine == theirs

    token = RENDER_BUDGET.set(RenderBudget(TemplateLimits(seconds=60.0)))
    try:
        for obj in objects:
            for name in names:
                mine, theirs = ours.getattr(obj, name), jinjas.getattr(obj, name)
                assert same(mine, theirs), (obj, name, mine, theirs)
    finally:
        RENDER_BUDGET.reset(token)
