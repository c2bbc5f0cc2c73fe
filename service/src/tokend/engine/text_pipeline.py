"""The text side of a Hugging Face-style tokenizer, before BPE: added tokens, normalizer, pre-tokenizer.

    raw text ── added tokens (normalized=False) ──> text │ id │ text ...
    each text ── normalizer (NFC) ── added tokens (normalized=True) ──> segments │ ids
    each segment ── pre-tokenizer ──> pieces (`pre_tokenize`; or the native core splits it)

`items` gives the segments (normalized text without added tokens, str) and the ids of added tokens, in
text order. Which added tokens count is the caller's choice per call (`active`): tokend applies
tiktoken's special-token policy to special ones, while non-special ones always count.

>>> from tokend.engine.pre_tokenizer import Split
>>> pipeline = TextPipeline(pre_tokenizer=(Split(r"\\S+|\\s+"),), normalizer="NFC",
...                         added_tokens=[AddedToken("<|end|>", 9)], dialect="oniguruma")
>>> pipeline.items("cafe\\u0301 <|end|>x", active=lambda token: True)
['café ', 9, 'x']
>>> pipeline.pre_tokenize("café ")
['café', ' ']

Not handled: offsets (callers that need them decode the ids, as tiktoken does).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable, Sequence
from typing import TypeVar

from ._native import contains_any
from .added_tokens import AddedToken, AddedTokenMatcher
from .byte_level_model import Normalizer
from .nfc import nfc
from .normalized_texts import kept_normalized
from .pre_tokenizer import PreTokenizerStep, compile_pre_tokenizer
from .splitting.nodes import Dialect

__all__ = ["TextPipeline", "normalize"]

Item = str | int
R = TypeVar("R")


def normalize(normalizer: Normalizer | None, text: str) -> str:
    """`text` after the normalizer (None: unchanged)."""
    if normalizer is None:
        return text
    kept = kept_normalized(text, normalizer)
    if kept is not None:  # measured in this call (Encoding.working_text_bytes): not normalized again
        return kept
    if normalizer == "NFC":
        return nfc(text)  # unicodedata's result, normalizing only the runs that may change (nfc.py)
    # normalize() runs the quick check itself and hands back `text` when it passes; an is_normalized()
    # first did the full normalization twice for text the quick check cannot decide (much of Vietnamese,
    # Korean, Indic text): Qwen 3's multilingual count spent 18% in NFC, is_normalized + normalize 11 us vs
    # normalize alone 6.5 us on 8 KB of Vietnamese and Korean.
    return unicodedata.normalize(normalizer, text)


class TextPipeline:
    """Immutable; safe to share between threads."""

    def __init__(
        self,
        *,
        pre_tokenizer: Sequence[PreTokenizerStep],
        normalizer: Normalizer | None = None,
        added_tokens: Sequence[AddedToken] = (),
        dialect: Dialect,
    ) -> None:
        self._pre_tokenizer, self._dialect = tuple(pre_tokenizer), dialect
        self.normalizer = normalizer
        self._raw = AddedTokenMatcher([token for token in added_tokens if not token.normalized])
        self._normalized = AddedTokenMatcher(
            [
                AddedToken(normalize(normalizer, token.content), token.id, token.special, token.lstrip,
                           token.rstrip, token.single_word, token.normalized)
                for token in added_tokens
                if token.normalized
            ]
        )

    @functools.cached_property
    def pre_tokenize(self) -> Callable[[str], list[str]]:
        """text -> pieces (compiled on first use: an Encoding whose core splits natively never needs it)."""
        return compile_pre_tokenizer(self._pre_tokenizer, dialect=self._dialect)

    def may_hold_added_tokens(self, text: str) -> bool:
        """False when no added token can occur in `text` (normalized ones are looked for in the normalized
        text)."""
        return self._raw.may_occur(text) or (bool(self._normalized) and self._normalized.may_occur(normalize(self.normalizer, text)))

    def unless_added_tokens(self, on_segment: Callable[[str], R]) -> Callable[[str], R | None] | None:
        """`text -> on_segment(normalized text)` for a text in which no added token can occur, else None (also
        for what is no exact str, and where `on_segment` raises UnicodeEncodeError: a lone surrogate), which
        sends the caller to its general way (so also for a text that holds one of their first two characters
        when AddedTokenMatcher looks for those); None when there are normalized added tokens, or more first
        pairs than the core's scan takes. Encoding.encode / count under the default policy, for a model
        whose special tokens are all raw added tokens (Qwen's): one Python call to the core's scan and one to
        the core, where the general way's six calls and the normalizer's two took ~2 % of a first `count` of
        code (docs/decisions.md, "Added tokens looked for in one pass").

        >>> pipeline = TextPipeline(pre_tokenizer=(), added_tokens=[AddedToken("<think>", 9)], dialect="oniguruma")
        >>> count = pipeline.unless_added_tokens(len)
        >>> count("a < b"), count("a <think> b")
        (5, None)
        """
        raw, normalizer = self._raw.prefix_scan, self.normalizer
        if self._normalized or not raw.native:  # (none of the families measured)
            return None
        strings = raw.strings  # contains_any(text, strings) is raw.found_in(text), a call fewer

        def unless(text: str) -> R | None:
            if type(text) is not str or contains_any(text, strings):
                return None
            try:  # ASCII is the same text under every normalization form
                return on_segment(text if normalizer is None or text.isascii() else normalize(normalizer, text))
            except UnicodeEncodeError:
                return None

        return unless

    def items(self, text: str, *, active: Callable[[AddedToken], bool]) -> list[Item]:
        """Segments and added-token ids of `text`, in order (no empty segments)."""
        items: list[Item] = []
        segments = self._raw.split(text, active=active) if self._raw else [text]
        for segment in segments:
            if isinstance(segment, int):
                items.append(segment)
                continue
            segment = normalize(self.normalizer, segment)
            inner = self._normalized.split(segment, active=active) if self._normalized else [segment]
            items += (part for part in inner if part != "")
        return items
