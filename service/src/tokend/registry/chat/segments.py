"""A rendered chat as segments, and how segments become ids, counts and per-message spans.

A built-in format renders a conversation into segments: a special token (by its text, e.g. "<|im_start|>",
always the one id the encoding gives it) or a piece of text that the engine encodes *on its own*. Where a
reference renderer encodes text pieces separately (openai-harmony, mistral-common), the format emits them
as separate segments; where it tokenizes one string (transformers), the format emits each stretch between
two special tokens as one segment, so the ids equal those of the whole string.

    >>> from tokend import Encoding, get_encoding
    >>> base = get_encoding("cl100k_base")        # + ChatML's tokens (see chat_format)
    >>> encoding = Encoding("cl100k_im", pat_str=base.pattern, mergeable_ranks=base.mergeable_ranks,
    ...                     special_tokens={**base.special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265})
    >>> rendered = RenderedChat((Segment("<|im_start|>", special=True, owner=0), Segment("user\\nHi", owner=0)), 1)
    >>> encode_rendered(encoding, rendered).ids
    [100264, 882, 198, 13347]
    >>> count_rendered(encoding, rendered).per_message
    [4]

Every segment has an `owner`: the index of the message it renders, or None for what the format adds on its
own (a BOS token, a default system prompt, the generation prompt). A segment may also list `splits`:
character offsets inside its text where a later message starts (templates only; see template_format).

Text segments are always encoded as ordinary text: a format that wants special-token text inside a
string to become special tokens (transformers' rule) cuts it out as special segments when it builds them
(text_builder), so the engine never searches for special tokens twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

__all__ = ["Segment", "RenderedChat", "ChatEncoding", "ChatCount", "encode_rendered", "count_rendered"]


@dataclass(frozen=True, slots=True)
class Segment:
    text: str  # the special token's text, or text to encode
    special: bool = False
    owner: int | None = None  # message index; None: added by the format
    # (character offset, message index) where another message starts inside this text (templates only)
    splits: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class RenderedChat:
    segments: tuple[Segment, ...]
    message_count: int
    spans_exact: bool = True  # False: some message boundaries could not be placed (template_format)

    @property
    def text(self) -> str:
        return "".join(segment.text for segment in self.segments)


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




def encode_rendered(encoding, rendered: RenderedChat) -> ChatEncoding:
    """Ids of a rendered chat and the span of each message."""
    encode_text = encoding.encode_ordinary
    special_ids = encoding.special_tokens
    ids: list[int] = []
    owners: list[int | None] = []  # per segment piece: (owner, token count) in order
    counts: list[int] = []
    for segment in rendered.segments:
        if segment.special:
            ids.append(special_ids[segment.text])
            owners.append(segment.owner)
            counts.append(1)
            continue
        piece = encode_text(segment.text)
        ids += piece
        if not segment.splits:
            owners.append(segment.owner)
            counts.append(len(piece))
        else:
            for owner, count in _split_by_offsets(encoding, segment, piece):
                owners.append(owner)
                counts.append(count)
    spans = _spans(owners, counts, rendered.message_count)
    return ChatEncoding(ids, rendered.text, spans, rendered.spans_exact)


def count_rendered(encoding, rendered: RenderedChat) -> ChatCount:
    """Total and per-message counts of a rendered chat, without building the id list where possible."""
    count_text = encoding.count_ordinary
    owners: list[int | None] = []
    counts: list[int] = []
    for segment in rendered.segments:
        if segment.special:
            owners.append(segment.owner)
            counts.append(1)
        elif not segment.splits:
            owners.append(segment.owner)
            counts.append(count_text(segment.text))
        else:
            piece = encoding.encode_ordinary(segment.text)
            for owner, count in _split_by_offsets(encoding, segment, piece):
                owners.append(owner)
                counts.append(count)
    per_message = [0] * rendered.message_count
    for owner, count in zip(owners, counts):
        if owner is not None:
            per_message[owner] += count
    return ChatCount(sum(counts), per_message, rendered.spans_exact)


def _split_by_offsets(encoding, segment: Segment, piece: list[int]) -> list[tuple[int | None, int]]:
    """Share the ids of one text among the messages that start inside it: a token belongs to the message
    in which its first byte lies. Byte offsets come from the token bytes, which concatenate to the text's
    UTF-8 for byte-level BPE; for an engine where they do not, the whole text stays with its first owner."""
    token_bytes = encoding.decode_tokens_bytes(piece)
    encoded = segment.text.encode("utf-8", "surrogatepass")
    if b"".join(token_bytes) != encoded:
        return [(segment.owner, len(piece))]
    # character offset -> byte offset of each split
    byte_splits = [(len(segment.text[:offset].encode("utf-8", "surrogatepass")), owner) for offset, owner in segment.splits]
    result: list[tuple[int | None, int]] = []
    owner, count, position, next_split = segment.owner, 0, 0, 0
    for token in token_bytes:
        while next_split < len(byte_splits) and position >= byte_splits[next_split][0]:
            if count:
                result.append((owner, count))
            owner, count = byte_splits[next_split][1], 0
            next_split += 1
        count += 1
        position += len(token)
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
