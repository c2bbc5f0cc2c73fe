"""Trace-specialised layouts: a chat template rendered once per conversation *shape*, reused for every plain
chat of that shape whose contents the template would treat the same way.

A plain chat is a list of `{"role": str, "content": str}` dicts without tools. Its shape: the roles in
order and `add_generation_prompt` (and the model's special tokens). The first chat of a shape is traced (template_trace):
the template renders — the whole chat and each prefix, as template_format does for per-message spans —
with each content replaced by a marker, answering the template's questions about a content with the real
answer and recording them as guards. The result, a `TemplateLayout`, is the rendered text as fixed text and
content references with the message each piece belongs to. A later chat of the same shape uses it when every
guard gives the same answer on its contents: substituting its contents into the layout gives, piece for
piece, what template_format would have built from the full renders (same text, same special tokens, same
owners, same `spans_exact`), without running the template.

Why substitution is exact (each point is checked when the layout is built; a failed check means no layout):
- the template did nothing to a content but output it (or strip it, modelled), and every question it asked
  is a guard: given the same answers, a render takes the same path and writes the same fixed text;
- special tokens: a content holding special-token text (or its first characters) goes the full way; and no
  special token of the model can start in fixed text and end in a content or the reverse (no fixed text
  next to a content ends with the beginning of one, or starts with the end of one), so the special tokens of
  the real text are exactly those of the fixed text;
- spans: a prefix render that is a prefix of the traced whole is one after substitution; one that is not
  must differ from it at a fixed character, or at a content that is not empty and does not start with the
  other render's character there (two guards), so that the boundary is unknown for every chat the layout
  serves; and no boundary may fall inside a special token (the full path would then find it only without
  spans);
- size: a chat whose substituted text could pass the template's `max_chars` goes the full way.
Traced renders run with the caller's limits. Anything a trace cannot follow (template_trace) gives "no
layout" for that shape and those guard answers, also cached, so such chats render in full without tracing
again; so does a chat whose prefix renders would cost more than template_format allows them
(message_positions.MAX_PREFIX_TICKS: its spans then come from the loops). The cache holds `MAX_SHAPES` shapes (oldest dropped first), each with up to `MAX_TRACES` traces.

    >>> from tokend.registry.chat.template_format import TemplateChatFormat
    >>> chat_format = TemplateChatFormat("{% for m in messages %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n{% endfor %}")
    >>> layouts = chat_format.layouts
    >>> chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    >>> specials = frozenset({"<|im_start|>", "<|im_end|>"})
    >>> from tokend.registry.chat.template_limits import TemplateLimits
    >>> layouts.rendered(chat, False, specials, TemplateLimits()).parts
    ['<|im_start|>', 'user\\nHi', '<|im_end|>', '\\n', '<|im_start|>', 'assistant\\nHello!', '<|im_end|>', '\\n']
    >>> layouts.stats()
    {'shapes': 1, 'layouts': 1, 'refused': 0}
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from typing import Any

from tokend.engine.text_parts import native_core
from tokend.errors import ChatTemplateError
from tokend.registry.chat.message_positions import MAX_PREFIX_TICKS, PREFIX_TIME_SHARE, RECORDED_FROM_MESSAGES, MessagePositions
from tokend.registry.chat.segments import ChatCount, RenderedChat, chat_count
from tokend.registry.chat.template_count_plan import TemplateCountPlan, count_plan
from tokend.registry.chat.template_limits import TemplateLimits
from tokend.registry.chat.template_trace import ContentTracer, Untraceable, guards_hold
from tokend.registry.chat.text_builder import TextBuilder, special_text_prefixes

__all__ = ["TemplateLayout", "TemplateLayouts", "owned_ranges"]

_ROLE = itemgetter("role")
_UNSET: Any = object()
_MAX_FORBIDDEN = 64  # strings the engine's plain-chat walk looks for (as chat_format)
MAX_SHAPES = 512
MAX_TRACES = 8  # per shape: traces with different guard answers (e.g. with and without "</think>")
_LIMIT_REASONS = ("time_limit", "size_limit", "security")


@dataclass(frozen=True)
class TemplateLayout:
    """A traced chat: its text as pieces, each with the message that owns it."""

    # (fixed text, owner) or ((message index, stripped), owner); owner None: the format's own text
    pieces: tuple[tuple[Any, int | None], ...]
    message_count: int
    spans_exact: bool
    # Size bound: no value the template builds, nor its output, is longer than
    # fixed_chars + references * (characters of all contents)
    fixed_chars: int  # most fixed characters in the output or in any one value
    references: int  # most references to one content in the output or in any one value
    references_whole: int  # the same, counting only references to contents as given
    references_stripped: int  # the same, counting only references to stripped contents
    # counter (TemplateLayouts.counter) -> its TemplateCountPlan of this layout, or None: made when first used
    plans: dict = field(default_factory=dict, compare=False, repr=False)


def owned_ranges(text: str, boundaries: list[int | None], count: int) -> tuple[list[tuple[int, int, int | None]], bool]:
    """The per-message split of a rendered chat: `boundaries[k]` is where message k starts (k < count) or where
    the last one ends (k == count), None where unknown. Returns (start, end, owner) ranges covering `text` and
    whether every boundary was placed (`spans_exact`). An unknown boundary merges a message into the one
    before it (for message 0: its start is 0).

    >>> owned_ranges("ABBC", [1, 3, 3], 2)
    ([(0, 0, None), (0, 1, None), (1, 3, 0), (3, 3, 1), (3, 4, None)], True)
    >>> owned_ranges("ABBC", [1, None, 3], 2)
    ([(0, 0, None), (0, 1, None), (1, 3, 0), (3, 4, None)], False)
    """
    boundaries = list(boundaries)
    if boundaries[0] is None:
        boundaries[0] = 0  # a template that cannot render an empty conversation: message 0 starts at 0
    exact = True
    known: list[tuple[int, int | None]] = []  # (offset, owner) in order
    last = 0
    for k, offset in enumerate(boundaries):
        if offset is None or offset < last:
            exact = False
            continue
        known.append((offset, k if k < count else None))
        last = offset
    if not known or known[0][0] > 0:
        known.insert(0, (0, None))
    ranges: list[tuple[int, int, int | None]] = []
    position = 0
    owner: int | None = None
    for offset, next_owner in known:
        ranges.append((position, offset, owner))
        position, owner = offset, next_owner
    ranges.append((position, len(text), owner))
    return ranges, exact


class TemplateLayouts:
    """The layouts of one template, by shape: `rendered(...)` gives a plain chat's RenderedChat, or None
    (render it in full: not plain, no layout for it, or content the layout cannot hold)."""

    def __init__(self, chat_format: Any) -> None:
        self._format = chat_format  # TemplateChatFormat: its compiled template and `_render`
        # (roles, add_generation_prompt, special tokens) -> ((guards, TemplateLayout | None), ...)
        self._shapes: dict[tuple[tuple[str, ...], bool, frozenset[str]], tuple[tuple[tuple, TemplateLayout | None], ...]] = {}
        self._lock = threading.Lock()
        self._interned: dict[frozenset[str], frozenset[str]] = {}
        # add_generation_prompt -> the fewest messages of a trace refused for its prefix renders' cost
        # (MAX_PREFIX_TICKS). A chat of twice as many is not traced: its prefix renders (their ticks grow with
        # the square of its length) would be refused too, after a traced render that costs about twice a
        # plain one (a 10,000-message Qwen 3 chat: 0.43 s of the 1 s CPU bound, before the full render the
        # chat then takes anyway). Twice, not once: a chat whose contents make the template branch more
        # (more ticks a message) cannot take the layouts away from chats just longer than it.
        self._refused_from: dict[bool, int] = {}
        self.enabled = True  # False: every chat renders in full (tests and benchmarks compare the two)

    def stats(self) -> dict[str, int]:
        entries = [layout for traces in self._shapes.values() for _, layout in traces]
        return {"shapes": len(self._shapes), "layouts": sum(1 for layout in entries if layout is not None),
                "refused": sum(1 for layout in entries if layout is None)}  # fmt: skip

    def rendered(
        self, messages: Any, add_generation_prompt: bool, special_tokens: frozenset[str], limits: TemplateLimits, spans: bool = True
    ) -> RenderedChat | None:
        """`messages` (the caller's dicts) rendered by their shape's layout, as template_format would render them
        (with `spans=False`: no owners and `spans_exact` False, as there); None: render them in full."""
        if not self.enabled or type(messages) is not list or not messages:
            return None
        roles: list[str] = []
        contents: list[str] = []
        for message in messages:
            if type(message) is not dict or len(message) != 2:
                return None
            role, content = message.get("role"), message.get("content")
            if type(role) is not str or not role or type(content) is not str:
                return None
            roles.append(role)
            contents.append(content)
        scanner = _content_scanner(special_tokens)
        if scanner is not None:
            for content in contents:
                if scanner(content):
                    return None  # special-token text in content: the full render cuts it out as transformers does
        special_tokens = self._interned.setdefault(special_tokens, special_tokens)
        shape = (tuple(roles), add_generation_prompt, special_tokens)
        for guards, layout in self._shapes.get(shape, ()):
            if guards_hold(guards, contents):
                return None if layout is None else self._substitute(layout, contents, special_tokens, limits, spans)
        if len(self._shapes.get(shape, ())) >= MAX_TRACES:
            return None  # this shape has been traced often enough: chats it does not fit render in full
        refused_from = self._refused_from.get(add_generation_prompt)
        if refused_from is not None and len(roles) >= 2 * refused_from:
            return None  # too long for its prefix renders (above): rendered in full, untraced
        try:
            traced = self._trace(roles, contents, add_generation_prompt, special_tokens, limits)
        except Untraceable:  # raised outside a render (a marker cut apart): this chat renders in full
            traced = None
        if traced is None:
            return None
        with self._lock:
            self._shapes[shape] = (*self._shapes.pop(shape, ()), traced)
            while len(self._shapes) > MAX_SHAPES:
                del self._shapes[next(iter(self._shapes))]
        layout = traced[1]
        return None if layout is None else self._substitute(layout, contents, special_tokens, limits, spans)

    def counter(self, encoding: Any) -> Callable[[Any, bool, bool, TemplateLimits | None], ChatCount | None] | None:
        """`count_chat` of plain chats on `encoding` by the layouts traced so far, in engine walks
        (template_count_plan): `(messages, add_generation_prompt, per_message, limits)` -> ChatCount, or None
        (the general path, which also traces a new shape). None when the encoding has no native walk."""
        if native_core(encoding) is None:
            return None
        special_tokens = frozenset(encoding.special_tokens)
        # one object per token set, so that looking a shape up compares it by identity (not 256 lookups)
        special_tokens = self._interned.setdefault(special_tokens, special_tokens)
        forbidden = special_text_prefixes(special_tokens) if special_tokens else ()
        if "" in forbidden or len(forbidden) > _MAX_FORBIDDEN:
            return None
        shapes = self._shapes
        longest: list[int | None] = []  # the longest token's bytes, found when the first plan is made
        default_chars = TemplateLimits().max_chars
        token = object()  # this counter's key in each layout's `plans`
        # (add_generation_prompt, messages) -> the plan that counted the last such chat, when its one walk checks
        # everything (the roles, the guards: TemplateCountPlan.quick): a chat of the same shape skips building
        # the shape's key and the plan's frame (a twentieth of counting a short chat)
        recent: dict[tuple[bool, int], TemplateCountPlan] = {}

        def count(messages: Any, add_generation_prompt: bool, per_message: bool, limits: TemplateLimits | None) -> ChatCount | None:
            if not self.enabled or type(messages) is not list:  # (an iterator must reach the general path unread)
                return None
            max_chars = default_chars if limits is None else limits.max_chars
            plan = recent.get((add_generation_prompt, len(messages)))
            if plan is not None:
                counted = plan.walk(messages, per_message, plan.shape)
                if counted is not None:
                    total, counts = counted
                    per_token = plan.chars_per_counted
                    if (per_token is not None and plan.fixed_chars + per_token * total <= max_chars) or plan.fits(messages, total, max_chars):
                        return chat_count(total, counts, plan.spans_exact) if per_message else chat_count(total, [], False)
            try:
                roles = tuple(map(_ROLE, messages))
            except Exception:  # not a list of dicts with a role: the general path says what is wrong
                return None
            traces = shapes.get((roles, add_generation_prompt, special_tokens))
            if traces is None:
                return None
            for guards, layout in traces:
                if layout is None:
                    continue
                plan = layout.plans.get(token, _UNSET)
                if plan is _UNSET:
                    if not longest:
                        ranks = getattr(encoding, "mergeable_ranks", None)  # byte-level BPE: a token is its bytes
                        longest.append(max(map(len, ranks), default=1) if isinstance(ranks, Mapping) else None)
                    plan = count_plan(layout, roles, guards, encoding, special_tokens, forbidden, longest[0])
                    layout.plans[token] = plan
                if plan is not None:
                    counted = plan.count(messages, per_message, max_chars)
                    if counted is not None:
                        if plan.quick:
                            recent[add_generation_prompt, len(roles)] = plan
                        return counted
            return None

        return count

    # -- using a layout ---------------------------------------------------------------------------------

    @staticmethod
    def _substitute(layout: TemplateLayout, contents: list[str], special_tokens: frozenset[str], limits: TemplateLimits, spans: bool) -> RenderedChat | None:
        if layout.fixed_chars + layout.references * sum(map(len, contents)) > limits.max_chars:
            return None  # might pass the template's size limit: the full render decides
        builder = TextBuilder(special_tokens, content_specials=True)
        template, add = builder.template, builder.add
        for piece, owner in layout.pieces:
            if not spans:
                owner = None
            if type(piece) is str:
                template(piece, owner)
            else:
                index, strip = piece
                add(contents[index].strip() if strip else contents[index], owner)
        count = layout.message_count
        return builder.build(message_count=count, spans_exact=layout.spans_exact if spans else not count)

    # -- tracing ----------------------------------------------------------------------------------------

    def _trace(self, roles, contents, add_generation_prompt, special_tokens, limits) -> tuple[tuple, TemplateLayout | None] | None:
        """(guards, layout or None) of a new trace, or None: not to be cached (a limit was hit)."""
        from tokend.registry.chat.sandbox import renders_in_turn  # (loaded already: this format compiled its template)

        limits = limits.start()
        try:
            with renders_in_turn(limits):  # the trace's renders in one turn of the process's renders
                return self._traced(roles, contents, add_generation_prompt, special_tokens, limits)
        except ChatTemplateError as error:  # the turn not had within the time limit
            if error.reason in _LIMIT_REASONS:
                return None
            raise

    def _traced(self, roles, contents, add_generation_prompt, special_tokens, limits) -> tuple[tuple, TemplateLayout | None] | None:
        compiled = self._format.compiled
        tracer = ContentTracer(contents, compiled)
        traced_messages = tracer.messages(roles)
        count = len(roles)
        positions = MessagePositions(traced_messages) if count >= RECORDED_FROM_MESSAGES else None  # (as template_format)
        try:
            full = self._format._render(traced_messages, None, add_generation_prompt, limits, tracer, positions)
        except ChatTemplateError as error:
            if error.reason in _LIMIT_REASONS:
                return None
            return tuple(tracer.guards), None  # refused, failed, or untraceable: the full render decides
        share = limits.share(PREFIX_TIME_SHARE)  # the prefix renders within a share of the time left, as template_format's
        if positions is not None and sum(positions.prefix_ticks(add_generation_prompt)) > MAX_PREFIX_TICKS:
            # too long a chat to trace its prefixes (template_format): this shape renders in full, its spans by loops
            with self._lock:
                self._refused_from[add_generation_prompt] = min(count, self._refused_from.get(add_generation_prompt, count))
            return tuple(tracer.guards), None
        if positions is not None and not positions.prefix_renders_fit(add_generation_prompt, share):
            return None  # not within the time left at this worker's pace now: not cached, the full render decides
        limits = share
        boundaries: list[int | None] = []
        full_markers = tracer.marker_spans(full)
        for k in range(count + 1):
            if k == count and not add_generation_prompt:
                boundaries.append(len(full))
                continue
            try:
                prefix = self._format._render(traced_messages[:k], None, False, limits, tracer)
            except ChatTemplateError as error:
                if error.reason in _LIMIT_REASONS:
                    return None  # not cached: the full render has the rest of the time
                if error.reason == "raised" and tracer.stopped is None or error.reason == "failed" and tracer.genuine_failure():
                    boundaries.append(None)  # the template refuses this unfinished conversation, as it would the real one
                    continue
                return tuple(tracer.guards), None
            boundary = _prefix_boundary(full, prefix, full_markers, tracer.marker_spans(prefix), tracer)
            if boundary is _UNDECIDED:
                return tuple(tracer.guards), None
            boundaries.append(boundary)
        guards = tuple(tracer.guards)
        if _cuts_a_special_token(full, boundaries, special_tokens):
            return guards, None  # the full path would find that token only without spans: keep it to that path
        ranges, exact = owned_ranges(full, boundaries, count)
        pieces: list[tuple[Any, int | None]] = []
        for start, end, owner in ranges:
            if start == end:
                continue
            if any(a < start < b or a < end < b for a, b in full_markers):
                return guards, None  # a boundary inside a marker (cannot happen for a prefix; refused anyway)
            pieces += [(piece, owner) for piece in tracer.pieces(full[start:end])]
        if tracer.stopped is not None or not _contents_isolated(tracer.pieces(full), special_tokens):
            return guards, None
        fixed_chars = sum(len(piece) for piece, _ in pieces if type(piece) is str)
        tracer.note_value([piece for piece, _ in pieces])
        return guards, TemplateLayout(tuple(pieces), count, exact, max(fixed_chars, tracer.most_fixed), *tracer.most_references)


def _cuts_a_special_token(text: str, boundaries: list[int | None], special_tokens: frozenset[str]) -> bool:
    """Whether a message boundary falls inside a special token of the text (as the full path finds them)."""
    builder = TextBuilder(special_tokens, content_specials=True)
    builder.add_rendered(text, None)
    inside: list[tuple[int, int]] = []
    position = 0
    for part in builder.build(message_count=0).parts:
        if type(part) is not str:
            inside.append((position, position + len(part)))
        position += len(part)
    return any(start < boundary < end for boundary in boundaries if boundary is not None for start, end in inside)


class _Undecided:
    pass


_UNDECIDED = _Undecided()


def _prefix_boundary(full: str, prefix: str, full_markers, prefix_markers, tracer: ContentTracer) -> int | None | _Undecided:
    """Where message k starts, from the traced whole and the traced render of `messages[:k]`: the prefix's
    length when it is a prefix of the whole; None when it is not. Where the two first differ at a content on
    one side and a fixed character (or the end) on the other, whether they still differ once substituted
    depends on that content: it does when the content is not empty and does not start with that character,
    two guards; a content that does not answer so, or two contents meeting there, give _UNDECIDED."""
    if full.startswith(prefix):
        return len(prefix)
    differ = len(os.path.commonprefix([full, prefix]))
    at_content = []
    for text, markers in ((full, full_markers), (prefix, prefix_markers)):
        for start, end in markers:
            if start < differ < end:
                return _UNDECIDED  # inside a content reference: two different contents (or one stripped) meet
            if start == differ:
                at_content.append(tracer.reference_at(text, start))
    if not at_content:
        return None  # two different fixed characters, or fixed text against the end: for every content
    if len(at_content) > 1:
        return _UNDECIDED
    reference = at_content[0]
    other = prefix if full_markers and any(start == differ for start, _ in full_markers) else full
    if not tracer.ask(reference, "bool", None):
        return _UNDECIDED
    if differ < len(other) and tracer.ask(reference, "startswith", other[differ]):
        return _UNDECIDED
    return None


def _contents_isolated(pieces: list, special_tokens: frozenset[str]) -> bool:
    """No special token can straddle a content and fixed text (or two contents): the fixed text before a
    content does not end with the start of a special token, the text after it does not start with the end of
    one, and text between two contents is not inside one."""
    if not special_tokens:
        return True
    starts, ends, longest = _token_parts(special_tokens)
    for position, piece in enumerate(pieces):
        if type(piece) is str:
            continue
        before = pieces[position - 1] if position > 0 and type(pieces[position - 1]) is str else ""
        after = pieces[position + 1] if position + 1 < len(pieces) and type(pieces[position + 1]) is str else ""
        if any(before[-j:] in starts for j in range(1, min(len(before), longest) + 1)):
            return False
        if any(after[:j] in ends for j in range(1, min(len(after), longest) + 1)):
            return False
        previous_content = position > 0 and (type(pieces[position - 1]) is not str or position > 1 and type(pieces[position - 2]) is not str)
        if previous_content and len(before) < longest and any(token.find(before, 1, len(token) - 1) >= 0 for token in special_tokens):
            return False
    return True


@lru_cache(maxsize=16)
def _token_parts(special_tokens: frozenset[str]) -> tuple[frozenset[str], frozenset[str], int]:
    """(proper starts, proper ends, longest length) of the special tokens."""
    starts = frozenset(token[:i] for token in special_tokens for i in range(1, len(token)))
    ends = frozenset(token[i:] for token in special_tokens for i in range(1, len(token)))
    return starts, ends, max(map(len, special_tokens))


@lru_cache(maxsize=16)
def _content_scanner(special_tokens: frozenset[str]):
    """The quick test for special-token text (or its start) in a content; None when the model has none."""
    if not special_tokens:
        return None
    prefixes = special_text_prefixes(special_tokens)
    firsts = "".join(sorted({prefix[0] for prefix in prefixes}))
    if len(prefixes) == 1:
        prefix = prefixes[0]
        return lambda text: prefix in text
    if len(firsts) == 1:
        return lambda text: firsts in text and any(prefix in text for prefix in prefixes)
    return lambda text: any(prefix in text for prefix in prefixes)
