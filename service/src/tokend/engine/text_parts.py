"""Text given as parts — ordinary text, each part encoded on its own, and special tokens — counted or encoded
per run of parts in one call. This is how a rendered chat prompt is tokenized (registry/chat/segments.py).

    >>> from tokend import get_encoding
    >>> encoding = get_encoding("cl100k_base")
    >>> parts = ["hello", " world", SpecialText("<|endoftext|>"), "bye"]
    >>> count_parts(encoding, parts, [2, 4])           # runs: parts[0:2], parts[2:4]
    [2, 2]
    >>> encode_parts(encoding, parts, [2, 4])
    ([15339, 1917, 100257, 29474], [2, 2])

An exact `str` part is ordinary text (its own `encode_ordinary`: parts are never joined, so ["hel", "lo"] is
two texts); a `SpecialText` part is one special token of the encoding (KeyError if it has none by that text;
`count_parts` does not look: one token). When the native core's split is the encoding's whole text path the
walk is one C call (native/text_parts.c); any other encoding (another family such as SentencePiece, a pattern
the core cannot split, a normalizer, added tokens) goes part by part through the engine contract
(`count_ordinary`, `encode_ordinary`, `special_tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["SpecialText", "count_parts", "encode_parts", "native_core"]


class SpecialText(str):
    """A special token's text, as one part: `SpecialText("<|im_start|>")`. Plain `str` parts are text."""

    __slots__ = ()


def native_core(encoding: Any) -> Any:
    """The native core whose text path is `encoding`'s whole text path, or None."""
    from tokend.engine.encoding import Encoding

    # The C walk encodes each text part as the core's encode does: exact when that is the encoding's whole
    # text path (the core splits, no normalizer, no prefix space, no added tokens looked for in text).
    if type(encoding) is Encoding and not encoding._uses_pipeline and encoding._encode_text == encoding._core.encode:
        return encoding._core
    return None


def count_parts(encoding: Any, parts: list[str], ends: list[int]) -> list[int]:
    """The tokens of each run `parts[ends[i-1]:ends[i]]` (`ends[-1] == len(parts)`)."""
    core = native_core(encoding)
    if core is not None:
        try:
            return core.count_parts(parts, ends)
        except UnicodeEncodeError:  # lone surrogates: the contract's methods repair them as tiktoken does
            pass
    count = encoding.count_ordinary
    counts, start = [], 0
    for end in _checked(ends, len(parts)):
        counts.append(sum(1 if type(part) is not str else count(part) if part else 0 for part in parts[start:end]))
        start = end
    return counts


def encode_parts(encoding: Any, parts: list[str], ends: list[int]) -> tuple[list[int], list[int]]:
    """`(ids, tokens of each run)`."""
    special_ids = encoding.special_tokens
    core = native_core(encoding)
    if core is not None:
        try:
            return core.encode_parts(parts, ends, encoding._special_tokens)
        except UnicodeEncodeError:
            pass
    encode = encoding.encode_ordinary
    ids: list[int] = []
    counts, start = [], 0
    for end in _checked(ends, len(parts)):
        before = len(ids)
        for part in parts[start:end]:
            if type(part) is not str:
                ids.append(special_ids[part])
            elif part:
                ids += encode(part)
        counts.append(len(ids) - before)
        start = end
    return ids, counts


def _checked(ends: Sequence[int], n_parts: int) -> Sequence[int]:
    previous = 0
    for end in ends:
        if not previous <= end <= n_parts:
            raise ValueError(f"ends must be ascending part indices up to {n_parts}")
        previous = end
    if previous != n_parts:
        raise ValueError(f"ends must finish at len(parts) = {n_parts}, not {previous}")
    return ends
