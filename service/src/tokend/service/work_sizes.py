"""The sizes a request's working memory is estimated on (``working_bytes``' ``sizes``): each input's bytes, or, for
an encoding whose per-byte working state covers a text it rewrites first (``working_text_bytes``: SentencePiece
Unigram models, whose Viterbi runs over the normalized text; byte-level models with an NFC normalizer, whose merge
runs over the normalized pieces), that text's bytes; for a chat, its counted bytes grown by what normalizing its
strings adds (``conversation_working_sizes``).

Why: a normalizer may make a text much longer: nmt_nfkc turns U+FDFA (3 bytes) into 39 (the SentencePiece core
allows 16 times + 1 KB), NFC turns U+1D160 into three characters (3 times). One CountTokens of 8 MiB of U+FDFA on a
Unigram nmt_nfkc model was estimated at 160 MiB and took a worker from 72 to 1,804 MiB; 7.5 MiB of U+1D160 on Qwen
3's model, estimated at 150 MiB, ~+400 MiB (docs/decisions.md, hostile23).

A SentencePiece BPE model with UNUSED pieces merges its whole normalized sentence at once and holds ~twice the
ordinary merge's state a byte of it (``working_text_weight``): 1 MiB of letters +37 MiB against 20 reserved.

Measuring normalizes the text; inside the operation's ``keeping_normalized`` scope (engine/normalized_texts.py) the
text is normalized whole and kept, and its encode takes it instead of normalizing again, so a measured Unigram
or NFC request costs about what an unmeasured one does (before: 15-22 % more, the text normalized twice; texts
past the scope's room are measured a slice at a time, as before). It is still done only where the bound
(``working_text_bound``: 16 or 3 times each input) would make the request large: a request that is small at that
bound never waits, and its reservation (none) is right either way. A request whose measured text passes twice
``max_request_bytes`` is refused (``Limits.check_working_text``): running alone, it would still hold past the
worker's bound.

    sizes = working_sizes("count", encoding, texts, item_sizes(texts), small_bytes=admission.small_bytes)
    release = admission.reserve(working_bytes("count", sizes=sizes), call=call)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tokend.service.admission import working_bytes
from tokend.service.batch import CallState
from tokend.service.measuring import measuring

__all__ = ["working_sizes", "conversation_working_sizes"]


def working_sizes(
    operation: str, encoding: Any, inputs: Sequence[str | bytes], sizes: Sequence[int], *, small_bytes: int,
    factor: int = 1, check: Callable[[int], None] | None = None, call: CallState | None = None,
) -> list[int]:
    """``sizes`` (each input's bytes) as ``working_bytes`` should count them for ``encoding``; ``factor``: how many
    times the caller reserves ``working_bytes(operation, ...)`` (offsets and chunks: twice); ``check``: called with
    the measured sizes' sum when they were measured (it raises to refuse the request); measuring stops at ``call``'s
    deadline or cancel (``measuring``).

    >>> working_sizes("count", object(), ["hello"], [5], small_bytes=4 << 20)   # an encoding that rewrites nothing
    [5]
    """
    at_most, measure = _measure_if_large(
        encoding, sizes, lambda bounded: factor * working_bytes(operation, sizes=bounded) <= small_bytes)
    if measure is None:
        return at_most
    with measuring(call):
        measured = [measure(item) for item in inputs]
    if check is not None:
        check(sum(measured))
    return _weighed(encoding, measured)


def conversation_working_sizes(
    estimate: Callable[[Sequence[int]], int], encoding: Any, conversations: Sequence[Any], sizes: Sequence[int], *,
    small_bytes: int, check: Callable[[int], None] | None = None, call: CallState | None = None,
) -> list[int]:
    """``sizes`` (each conversation's counted bytes, ``conversation_bytes``) grown by what normalizing its strings
    adds, for ``estimate`` (``chat_working_bytes`` of the operation): the template's own text is the model's
    usual text, the messages' and tools' strings are what a client chose. Measured as for ``working_sizes``: only
    where the bound would make the request large, on all of a conversation's strings joined (a copy of them,
    at most the request's bytes, dropped once measured); ``check`` gets the measured sizes' sum.

    >>> conversation_working_sizes(sum, object(), [None], [40], small_bytes=4 << 20)   # nothing to normalize
    [40]
    """
    at_most, measure = _measure_if_large(encoding, sizes, lambda bounded: estimate(bounded) <= small_bytes)
    if measure is None:
        return at_most
    measured = []
    with measuring(call):
        for conversation, size in zip(conversations, sizes):
            text = "\n".join(_strings((conversation.messages, conversation.tools)))
            measured.append(size + max(0, measure(text) - len(text.encode("utf-8", "surrogatepass"))))
    if check is not None:
        check(sum(measured))
    return _weighed(encoding, measured)


def _measure_if_large(
    encoding: Any, sizes: Sequence[int], small: Callable[[list[int]], bool]
) -> tuple[list[int], Callable[[Any], int] | None]:
    """``sizes`` at the encoding's bound (``working_text_bound``, weighed), and its ``working_text_bytes`` when that
    bound could make the request large; None when the bound settles it (the encoding rewrites nothing, or
    ``small`` holds even at the bound: such a request reserves nothing either way)."""
    measure = getattr(encoding, "working_text_bytes", None)
    bound = getattr(encoding, "working_text_bound", None)
    if measure is None or bound is None:
        return list(sizes), None
    at_most = _weighed(encoding, [bound(size) for size in sizes])
    if at_most == list(sizes) or small(at_most):
        return at_most, None
    return at_most, measure


def _weighed(encoding: Any, sizes: list[int]) -> list[int]:
    """``sizes`` of working text as ``working_bytes`` should count them: times the encoding's
    ``working_text_weight`` (a SentencePiece BPE model with UNUSED pieces holds twice the ordinary merge's state a
    byte); the limit (``check``) is on the text itself."""
    weight = getattr(encoding, "working_text_weight", 1)
    return sizes if weight == 1 else [weight * size for size in sizes]


def _strings(value: Any) -> Iterator[str]:
    """Every string in a conversation's JSON-shaped messages and tools, keys included (their depth was checked when
    they were counted)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            for key, inner in item.items():
                stack.append(key)
                stack.append(inner)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
