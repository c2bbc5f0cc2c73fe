"""A rendered chat as parts, and how the parts become ids, counts and per-message spans.

A format renders a conversation into parts: a special token (`SpecialText`, e.g. "<|im_start|>", always the
one id the encoding gives it) or a piece of text that the engine encodes *on its own*. Where a reference
renderer encodes text pieces separately (openai-harmony, mistral-common), the format emits them as
separate parts; where it tokenizes one string (transformers), the format emits each stretch between two
special tokens as one part (text_builder), so the ids equal those of the whole string.

    >>> builder = PartsBuilder()
    >>> builder.add(0, SpecialText("<|endoftext|>"), "user: Hi")
    >>> builder.add(None, "assistant:")
    >>> rendered = builder.build(message_count=1)
    >>> rendered.parts, rendered.ends, rendered.owners
    (['<|endoftext|>', 'user: Hi', 'assistant:'], [2, 3], [0, None])
    >>> from tokend import get_encoding
    >>> encode_rendered(get_encoding("cl100k_base"), rendered).message_spans
    [(0, 4)]

Parts come in runs, each with an `owner`: the index of the message it renders, or None for what the format
adds on its own (a BOS token, a default system prompt, the generation prompt). A text part may also list
`splits`: character offsets inside it where a later message starts (templates, and text the transformers
rule joins across messages; see template_format); its tokens are then shared out by those offsets.

The parts are counted or encoded in one engine call (`tokend.engine.text_parts`, native for the built-in
patterns) that reports the tokens of each run: no Python work per part. Text parts are always encoded as
ordinary text: a format that wants special-token text inside a string to become special tokens
(transformers' rule) cuts it out as special parts when it builds them (text_builder).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tokend.engine.text_parts import SpecialText, count_parts, encode_parts

__all__ = [
    "ChatCount",
    "ChatEncoding",
    "PartsBuilder",
    "RenderedChat",
    "Segment",
    "SpecialText",
    "chat_count",
    "count_rendered",
    "encode_rendered",
]


@dataclass(frozen=True, slots=True)
class Segment:
    """One part with its owner, as `RenderedChat.segments` lists them (for reading and tests)."""

    text: str  # the special token's text, or text to encode
    special: bool = False
    owner: int | None = None  # message index; None: added by the format
    # (character offset, message index) where another message starts inside this text
    splits: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RenderedChat:
    parts: list[str]  # SpecialText: one special token; an exact str: text, encoded on its own
    ends: list[int]  # run i is parts[ends[i-1]:ends[i]]; ends[-1] == len(parts)
    owners: list[int | None]  # the message of each run; None: the format's own
    message_count: int
    spans_exact: bool = True  # False: some message boundaries could not be placed (template_format)
    splits: Mapping[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)  # part index -> splits

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def segments(self) -> tuple[Segment, ...]:
        segments, start = [], 0
        for end, owner in zip(self.ends, self.owners):
            for index in range(start, end):
                part = self.parts[index]
                special = type(part) is not str
                segments.append(Segment(str(part), special, owner, self.splits.get(index, ())))
            start = end
        return tuple(segments)

    @classmethod
    def from_segments(cls, segments: list[Segment], message_count: int, spans_exact: bool = True) -> RenderedChat:
        builder = PartsBuilder()
        for segment in segments:
            if segment.splits:
                builder.add_split(segment.owner, segment.text, segment.splits)
            else:
                builder.add(segment.owner, SpecialText(segment.text) if segment.special else segment.text)
        return builder.build(message_count=message_count, spans_exact=spans_exact)


class PartsBuilder:
    """Parts in order, each run with its owner: `add(owner, *parts)`; `build(...)` → RenderedChat."""

    __slots__ = ("parts", "_ends", "_owners", "_owner", "_start", "_splits")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._ends: list[int] = []  # of the closed runs
        self._owners: list[int | None] = []  # of every run, the open one last
        self._owner: object = _NO_OWNER
        self._start = 0  # where the open run starts
        self._splits: dict[int, tuple[tuple[int, int], ...]] = {}

    def add(self, owner: int | None, *parts: str) -> None:
        if owner != self._owner:
            self._new_run(owner)
        self.parts += parts

    def extend(self, owner: int | None, parts: list[str]) -> None:
        if owner != self._owner:
            self._new_run(owner)
        self.parts += parts

    def add_split(self, owner: int | None, text: str, splits: tuple[tuple[int, int], ...]) -> None:
        """Text in which other messages start (`splits`: (character offset, message)); what follows
        belongs to the last of them."""
        self.add(owner, text)
        self._splits[len(self.parts) - 1] = splits
        self._new_run(splits[-1][1])

    def _new_run(self, owner: int | None) -> None:
        if self._owners and len(self.parts) == self._start:
            self._owners[-1] = owner  # the open run is still empty
        else:
            if self._owners:
                self._ends.append(len(self.parts))
            self._owners.append(owner)
            self._start = len(self.parts)
        self._owner = owner

    def build(self, *, message_count: int, spans_exact: bool = True) -> RenderedChat:
        ends = [*self._ends, len(self.parts)] if self._owners else []
        return RenderedChat(self.parts, ends, list(self._owners), message_count, spans_exact, self._splits)


_NO_OWNER = object()


@dataclass(frozen=True)
class ChatEncoding:
    """The result of `encode_chat`: prompt ids, the rendered text, and which ids each message produced.

    `message_spans[i]` = (start, end): `ids[start:end]` came from `messages[i]` (start == end when a format
    renders nothing for it, e.g. mistral's history tool calls). Ids outside every span are the format's own
    (BOS, default system prompt, tool definitions before the messages, the generation prompt).
    `spans_exact` is False when a template renders a message differently once later messages follow, so
    the boundary before it cannot be placed: that message's ids then count towards the one before it.
    """

    ids: list[int]
    text: str
    message_spans: list[tuple[int, int]]
    spans_exact: bool = True

    @property
    def message_counts(self) -> list[int]:
        return [end - start for start, end in self.message_spans]


@dataclass(frozen=True)
class ChatCount:
    """The result of `count_chat`: the total and what each message contributed (see ChatEncoding)."""

    total: int
    per_message: list[int]
    spans_exact: bool = True
    estimate: bool = False  # True for openai-chat: OpenAI's documented rule, not a token layout

    @property
    def format_overhead(self) -> int:
        """Tokens that belong to no message (BOS, default system prompt, generation prompt, ...)."""
        return self.total - sum(self.per_message)


_new_object = object.__new__


def chat_count(total: int, per_message: list[int], spans_exact: bool = True, estimate: bool = False) -> ChatCount:
    """`ChatCount(...)`, built without the frozen dataclass's four `object.__setattr__` calls (~0.5 us, a
    twentieth of counting a short plain chat)."""
    count = _new_object(ChatCount)
    fields = count.__dict__
    fields["total"] = total
    fields["per_message"] = per_message
    fields["spans_exact"] = spans_exact
    fields["estimate"] = estimate
    return count


def encode_rendered(encoding, rendered: RenderedChat) -> ChatEncoding:
    """Ids of a rendered chat and the span of each message."""
    if rendered.splits:
        ids, owners, counts = _walk_with_splits(encoding, rendered, want_ids=True)
    else:
        ids, counts = encode_parts(encoding, rendered.parts, rendered.ends)
        owners = rendered.owners
    return ChatEncoding(ids, rendered.text, _spans(owners, counts, rendered.message_count), rendered.spans_exact)


def count_rendered(encoding, rendered: RenderedChat) -> ChatCount:
    """Total and per-message counts of a rendered chat, without building the id list where possible."""
    if rendered.splits:
        _, owners, counts = _walk_with_splits(encoding, rendered, want_ids=False)
    else:
        counts = count_parts(encoding, rendered.parts, rendered.ends)
        owners = rendered.owners
    per_message = [0] * rendered.message_count
    for owner, count in zip(owners, counts):
        if owner is not None:
            per_message[owner] += count
    return ChatCount(sum(counts), per_message, rendered.spans_exact)


def _walk_with_splits(encoding, rendered: RenderedChat, *, want_ids: bool) -> tuple[list[int], list, list[int]]:
    """Part by part, sharing out the tokens of split texts: (ids or [], owner per piece, count per piece)."""
    special_ids = encoding.special_tokens
    ids: list[int] = []
    owners: list[int | None] = []
    counts: list[int] = []
    start = 0
    for end, owner in zip(rendered.ends, rendered.owners):
        for index in range(start, end):
            part = rendered.parts[index]
            if type(part) is not str:
                if want_ids:
                    ids.append(special_ids[part])
                owners.append(owner)
                counts.append(1)
            elif index in rendered.splits:
                piece = encoding.encode_ordinary(part)
                ids += piece
                for piece_owner, count in _split_by_offsets(encoding, part, owner, rendered.splits[index], piece):
                    owners.append(piece_owner)
                    counts.append(count)
            else:
                piece = encoding.encode_ordinary(part) if want_ids else None
                if piece is not None:
                    ids += piece
                owners.append(owner)
                counts.append(len(piece) if piece is not None else encoding.count_ordinary(part))
        start = end
    return ids, owners, counts


# Token bytes looked at a block at a time: a bytes object a token (~41 bytes with its list slot) for the whole text
# made a split text cost ~110 bytes an input byte (2 MB of one-byte tokens, a template joining two messages),
# three times what ``chat_working_bytes`` reserves; a block holds ~2.7 MB whatever the text's length.
SPLIT_BLOCK_TOKENS = 1 << 16


def _split_by_offsets(encoding, text: str, owner, splits, piece: list[int]) -> list[tuple[int | None, int]]:
    """Share the ids of one text among the messages that start inside it: a token belongs to the message
    in which its first byte lies. Byte offsets come from the token bytes, which concatenate to the text's
    UTF-8 for byte-level BPE; for an engine where they do not, the whole text stays with its first owner."""
    encoded = memoryview(text.encode("utf-8", "surrogatepass"))
    # character offset -> byte offset of each split, each encoding only the characters since the one before
    byte_splits: list[tuple[int, int | None]] = []
    char_position = byte_position = 0
    for offset, split_owner in splits:
        byte_position += len(text[char_position:offset].encode("utf-8", "surrogatepass"))
        char_position = offset
        byte_splits.append((byte_position, split_owner))
    first_owner = owner
    result: list[tuple[int | None, int]] = []
    count, position, next_split = 0, 0, 0
    for block_start in range(0, len(piece), SPLIT_BLOCK_TOKENS):
        token_bytes = encoding.decode_tokens_bytes(piece[block_start:block_start + SPLIT_BLOCK_TOKENS])
        joined = b"".join(token_bytes)
        if encoded[position:position + len(joined)] != joined:
            return [(first_owner, len(piece))]
        for token in token_bytes:
            while next_split < len(byte_splits) and position >= byte_splits[next_split][0]:
                if count:
                    result.append((owner, count))
                owner, count = byte_splits[next_split][1], 0
                next_split += 1
            count += 1
            position += len(token)
    if position != len(encoded):
        return [(first_owner, len(piece))]
    result.append((owner, count))
    return result


def _spans(owners: list[int | None], counts: list[int], message_count: int) -> list[tuple[int, int]]:
    starts: list[int | None] = [None] * message_count
    ends = [0] * message_count
    position = 0
    for owner, count in zip(owners, counts):
        if owner is not None and count:
            if starts[owner] is None:
                starts[owner] = position
            ends[owner] = position + count
        position += count
    spans = []
    previous_end = 0
    # Owners appear in message order; a message with no ids gets an empty span where it would be.
    for index in range(message_count):
        start = starts[index]
        if start is None:
            spans.append((previous_end, previous_end))
        else:
            spans.append((start, ends[index]))
            previous_end = ends[index]
    return spans
