"""A template layout (template_layout) counted by the engine's plain-chat walk (engine/message_counts): what
makes `count_chat` on a template cost about as much as counting the chat's text.

A layout qualifies when each content lands in exactly one stretch of text between two special tokens, at its
end, after fixed text (its *prefix*), and the other stretches hold no content: then a message's content costs
`count_ordinary(prefix + content)` and everything else is constant. Messages whose prefixes agree by role run
in one walk (`segments`); what each owner gets besides the contents (`constants`) was counted when the plan was
built. The walk refuses (None: "count it the general way") a chat that is not plain, or whose content holds
special-token text (`forbidden`); the guards the trace recorded are checked here, except those the forbidden
strings already answer (a content without "</" holds no "</think>").

    >>> from tokend import get_encoding
    >>> from tokend.registry.chat.template_format import TemplateChatFormat
    >>> from tokend.registry.chat.template_limits import TemplateLimits
    >>> chat_format = TemplateChatFormat("{% for m in messages %}<|endoftext|>{{ m.role }}: {{ m.content }}{% endfor %}")
    >>> encoding = get_encoding("cl100k_base")
    >>> chat = [{"role": "user", "content": "Hi"}]
    >>> chat_format.layouts.rendered(chat, False, frozenset(encoding.special_tokens), TemplateLimits()) is not None
    True
    >>> counter = chat_format.layouts.counter(encoding)
    >>> count = counter(chat, False, True, None)
    >>> count.total, count.per_message, count.spans_exact
    (4, [4], True)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from tokend.engine.message_counts import MessageLayout, message_counter
from tokend.registry.chat.segments import ChatCount, chat_count
from tokend.registry.chat.text_builder import TextBuilder

__all__ = ["TemplateCountPlan", "count_plan", "compile_guards"]

_MARK = "\U000ffffd"
_MARKED = re.compile(_MARK + "(.)" + _MARK, re.S)
_PLANE_15 = 0xF0000


@dataclass(frozen=True)
class TemplateCountPlan:
    """A layout as walks of the engine plus constants."""

    segments: tuple[tuple[int, int, Callable], ...]  # (first message, end, counter of messages[first:end])
    constants: tuple[int, ...]  # tokens each message owns besides the contents
    overhead: int  # tokens no message owns
    owners: tuple[int | None, ...] | None  # the owner of each content's tokens; None: each its own message
    # direct: one walk whose counts carry the constants; it also checks `shape` (the roles, which message's count
    # takes each one's tokens, the first-character guards: engine/message_counts) so that the plan can be tried
    # on any chat, without looking its shape up
    direct: bool
    shape: tuple | None
    guards: Callable[[list], bool] | None  # the remaining guards, on the messages (None: none)
    fixed_chars: int
    references: int
    chars_per_token: int | None  # a content has at most this many characters per token (None: look)
    spans_exact: bool

    @cached_property  # (read per chat: cached in the instance's dict, no frame after the first)
    def walk(self) -> Callable:
        """The one walk of a direct plan: `walk(messages, per_message, shape)`."""
        return self.segments[0][2]

    @property
    def quick(self) -> bool:
        """Whether the walk checks all this plan asks of a chat (direct, no guards left to Python): then
        `walk(messages, per_message, shape)` and `fits` are its whole count, on a chat of any shape."""
        return self.direct and self.guards is None

    @cached_property
    def chars_per_counted(self) -> int | None:
        """Characters a counted token adds to the render at most (None: unknown), for `fits`."""
        return None if self.chars_per_token is None else self.references * self.chars_per_token

    def count(self, messages: list, per_message: bool, max_chars: int) -> ChatCount | None:
        """The count of a chat of the plan's shape, or None (guards not met, not plain, maybe too long)."""
        if self.guards is not None:
            try:
                if not self.guards(messages):
                    return None
            except (TypeError, KeyError, IndexError, AttributeError):  # not plain: the general path says why
                return None
        if self.direct:
            counted = self.segments[0][2](messages, per_message, self.shape)
            if counted is None:
                return None
            total, counts = counted
            if not self.fits(messages, total, max_chars):
                return None
            if counts is None:
                return chat_count(total, [], False)  # as the general path: spans not placed, not exact
            return chat_count(total, counts, self.spans_exact)
        total = self.overhead
        counts: list[int] = []
        for first, end, counter in self.segments:
            counted = counter(messages[first:end] if first or end != len(messages) else messages, per_message)
            if counted is None:
                return None
            total += counted[0]
            if per_message:
                counts += counted[1]
        if not self.fits(messages, total, max_chars):
            return None
        total += sum(self.constants)
        if not per_message:
            return chat_count(total, [], False)
        result = list(self.constants)
        if self.owners is None:
            for index, count in enumerate(counts):
                result[index] += count
        else:
            for owner, count in zip(self.owners, counts):
                if owner is not None:
                    result[owner] += count
        return chat_count(total, result, self.spans_exact)

    def fits(self, messages: list, tokens: int, max_chars: int) -> bool:
        """Whether no render of this chat can pass `max_chars` (the template's size limit): from the tokens
        counted (each at most `chars_per_token` characters of content) or else from the contents."""
        if self.chars_per_token is not None and self.fixed_chars + self.references * self.chars_per_token * tokens <= max_chars:
            return True
        return self.fixed_chars + self.references * sum(len(message["content"]) for message in messages) <= max_chars


def count_plan(layout: Any, roles: tuple[str, ...], guards: tuple, encoding: Any, special_tokens: frozenset[str],
               forbidden: tuple[str, ...], longest_token: int | None) -> TemplateCountPlan | None:  # fmt: skip
    """The plan of `layout` (a TemplateLayout of chats with these roles), or None when it does not qualify."""
    count = layout.message_count
    builder = TextBuilder(special_tokens, content_specials=False)
    for piece, owner in layout.pieces:
        if type(piece) is str:
            if _MARK in piece:
                return None  # the template writes the character this plan marks contents with
            builder.template(piece, owner)
        else:
            index, strip = piece
            builder.add(f"{_MARK}{chr(_PLANE_15 + 2 * index + strip)}{_MARK}", owner)
    rendered = builder.build(message_count=count, spans_exact=layout.spans_exact)
    if rendered.splits:
        return None  # a message starts inside a stretch of text: its tokens are shared by offsets
    constants = [0] * count
    overhead = 0
    prefixes: list[str | None] = [None] * count
    owners: list[int | None] = [None] * count
    strips: set[bool] = set()
    start = 0
    for end, owner in zip(rendered.ends, rendered.owners):
        for part in rendered.parts[start:end]:
            if type(part) is not str:
                tokens = 1
            elif _MARK not in part:
                tokens = encoding.count_ordinary(part)
            else:
                marks = list(_MARKED.finditer(part))
                if len(marks) != 1 or marks[0].end() != len(part):
                    return None  # two contents in one stretch, or text after a content
                code = ord(marks[0].group(1)) - _PLANE_15
                index = code // 2
                if prefixes[index] is not None:
                    return None  # the content appears twice
                prefixes[index] = part[: marks[0].start()]
                owners[index] = owner
                strips.add(bool(code % 2))
                continue
            if owner is None:
                overhead += tokens
            else:
                constants[owner] += tokens
        start = end
    if any(prefix is None for prefix in prefixes) or len(strips) > 1:
        return None  # a content that is not rendered, or stripped in one place and not in another
    if any(string in prefix for prefix in prefixes for string in forbidden if prefix):
        return None
    strip = strips.pop() if strips else False
    segments: list[tuple[int, int, dict[str, tuple[str, int, bool]]]] = []
    for index, (role, prefix) in enumerate(zip(roles, prefixes)):
        if segments and segments[-1][2].get(role, (prefix,))[0] == prefix:
            first, _, table = segments[-1]
            table[role] = (prefix, 0, True)
            segments[-1] = (first, index + 1, table)
        else:
            segments.append((index, index + 1, {role: (prefix, 0, True)}))
    identity = all(owner == index for index, owner in enumerate(owners))
    role_constants = _role_constants(roles, owners, constants) if len(segments) == 1 else None
    direct = role_constants is not None
    if direct:
        table = {role: (segments[0][2][role][0], constant, True) for role, constant in role_constants.items()}
        segments = [(0, count, table)]
    walks = []
    for first, end, table in segments:
        counter = message_counter(
            encoding, MessageLayout(roles=table, forbidden=forbidden, strip=strip, overhead=overhead if direct else 0)
        )
        if counter is None:
            return None
        walks.append((first, end, counter))
    shape = None
    python_guards = guards
    if direct:
        checks, first_characters = _split_guards(guards, forbidden)
        # first-character guards on a content as it is go to the walk; on a stripped one (~index) they stay here
        python_guards = tuple(check for check in checks) + tuple(
            (index, "first_character_not_in", frozenset(characters), True) for index, characters in first_characters.items() if index < 0
        )
        native = [None] * count
        for index, characters in first_characters.items():
            if index >= 0:
                native[index] = ("" in characters, "".join(sorted(characters - {""})))
        shape = (tuple(roles), None if identity else tuple(owners), tuple(native) if any(native) else None)
    # Characters of content per token counted: at most the longest token's bytes, when the values hold the
    # contents as they are counted (all stripped, or none).
    other_references = layout.references_whole if strip else layout.references_stripped
    chars_per_token = longest_token if other_references == 0 else None
    return TemplateCountPlan(
        tuple(walks), tuple(constants), overhead, None if identity else tuple(owners), direct, shape,
        _compiled(python_guards) if direct else compile_guards(guards, forbidden), layout.fixed_chars, layout.references, chars_per_token, layout.spans_exact,
    )  # fmt: skip


def _role_constants(roles, owners, constants) -> dict[str, int] | None:
    """Constant tokens by role such that each owner's messages add up to what it owns, or None. A message whose
    boundary is unknown belongs to the one before it (template_layout): its constants go there too."""
    groups: dict[int, list[int]] = {}
    for index, owner in enumerate(owners):
        if owner is None:
            return None
        groups.setdefault(owner, []).append(index)
    if any(constants[owner] and owner not in groups for owner in range(len(roles))):
        return None  # a message owns constants but no content goes to it
    by_role: dict[str, int] = {}
    pending = []
    for owner, members in groups.items():
        if len(members) == 1:
            role = roles[members[0]]
            if by_role.setdefault(role, constants[owner]) != constants[owner]:
                return None
        else:
            pending.append((owner, members))
    for owner, members in pending:
        unknown = [index for index in members if roles[index] not in by_role]
        known = sum(by_role[roles[index]] for index in members if roles[index] in by_role)
        if len({roles[index] for index in unknown}) > 1:
            return None
        if unknown:
            share, remainder = divmod(constants[owner] - known, len(unknown))
            if remainder or share < 0:
                return None
            by_role[roles[unknown[0]]] = share
        elif known != constants[owner]:
            return None
    for owner, members in pending:  # every group again, now that every role has its constant
        if sum(by_role[roles[index]] for index in members) != constants[owner]:
            return None
    return by_role


def compile_guards(guards: tuple, forbidden: tuple[str, ...]) -> Callable[[list], bool] | None:
    """The guards as one function of the messages, without those that content free of `forbidden` (which the
    walk checks) always passes: "not in", "does not start / end with" a string holding a forbidden one."""
    checks, first_characters = _split_guards(guards, forbidden)
    for index, characters in first_characters.items():
        checks.append((index, "first_character_not_in", frozenset(characters), True))
    return _compiled(tuple(checks))


def _split_guards(guards: tuple, forbidden: tuple[str, ...]) -> tuple[list[tuple], dict[int, set[str]]]:
    """(the guards left to check, {index: what the content's first character ("" if empty) is not}): the
    questions about the first character only, folded into one set per content (Qwen3 asks three of them
    about every assistant turn): not empty; does not start with one character; lstrip(chars) changes
    nothing. Guards that content free of `forbidden` always passes are dropped."""
    checks = []
    first_characters: dict[int, set[str]] = {}
    for index, question, argument, answer in dict.fromkeys(guards):
        if answer is False and question in ("contains", "startswith", "endswith"):
            arguments = argument if type(argument) is tuple else (argument,)
            if all(any(string in text for string in forbidden) for text in arguments):
                continue
        if question == "bool" and answer is True:
            first_characters.setdefault(index, set()).add("")
            continue
        arguments = argument if type(argument) is tuple else (argument,)
        if question == "startswith" and answer is False and all(len(text) == 1 for text in arguments):
            first_characters.setdefault(index, set()).update(arguments)
            continue
        if question == "lstrip" and answer is True and argument is not None:
            first_characters.setdefault(index, set()).update(argument)
            continue
        checks.append((index, question, argument, answer))
    return checks, first_characters


def _compiled(checks: tuple) -> Callable[[list], bool] | None:
    """Guards (index, question, argument, answer) as one function of the messages; None when there are none."""
    if not checks:
        return None
    # One generated expression: ~40 ns a guard instead of ~300 in a loop. Only indices (ints) and fixed names
    # go into the source; the arguments are read from the tuple `A`.
    arguments = tuple(argument for _, _, argument, _ in checks)
    terms = []
    for number, (index, question, _, answer) in enumerate(checks):
        content = f"c[{int(index)}]['content']" if index >= 0 else f"c[{int(~index)}]['content'].strip()"
        argument = f"A[{number}]"
        if question == "contains":
            term = f"({argument} in {content})"
        elif question in ("startswith", "endswith"):
            term = f"{content}.{question}({argument})"
        elif question == "eq":
            term = f"({content} == {argument})"
        elif question == "bool":
            term = f"({content} != '')"
        elif question in ("strip", "lstrip", "rstrip"):
            term = f"({content}.{question}({argument}) == {content})"
        elif question == "first_character_not_in":
            term = f"({content}[:1] not in {argument})"
        else:
            raise ValueError(question)
        terms.append(term if answer is True else f"(not {term})" if answer is False else f"(bool({term}) == {bool(answer)!r})")
    namespace: dict[str, Any] = {"A": arguments}
    exec(f"def check(c):\n    return {' and '.join(terms)}\n", namespace)  # noqa: S102 (source built from ints)
    return namespace["check"]
