"""TextBuilder's search for special-token text: the engine's rule (leftmost, then longest at one offset), held
to a regex alternation of the tokens longest first, and linear in the text however many tokens it holds."""

from __future__ import annotations

import random
import re
import time

from tokend.registry.chat.segments import SpecialText
from tokend.registry.chat.text_builder import TextBuilder

# Three prefixes ("<|", "<t", "[I"), tokens of one prefix nested in each other, and a token inside another.
SPECIALS = frozenset({"<|im_start|>", "<|im_end|>", "<|im", "<think>", "</think>", "<tool_call>", "[INST]", "[INST]x"})
ALPHABET = ["<|im_start|>", "<|im_end|>", "<|im", "<|", "<think>", "<th", "</think>", "<tool_call>", "[INST]", "[INST]x",
            "[I", "<", "|", "[", "a", "b", " ", "\n"]


def _parts(text: str) -> list[tuple[str, bool]]:
    builder = TextBuilder(SPECIALS, content_specials=True)
    builder.add_rendered(text, None)
    return [(str(part), type(part) is SpecialText) for part in builder.build(message_count=0).parts]


def _reference(text: str) -> list[tuple[str, bool]]:
    pattern = "|".join(map(re.escape, sorted(SPECIALS, key=len, reverse=True)))
    parts, position = [], 0
    for match in re.finditer(pattern, text):
        if match.start() > position:
            parts.append((text[position : match.start()], False))
        parts.append((match.group(), True))
        position = match.end()
    if position < len(text):
        parts.append((text[position:], False))
    return parts


def test_the_search_finds_what_a_longest_first_alternation_finds():
    generator = random.Random(31)
    for _ in range(3000):
        text = "".join(generator.choice(ALPHABET) for _ in range(generator.randrange(0, 30)))
        assert _parts(text) == _reference(text), text


def test_the_search_is_linear_when_a_prefix_stops_occurring():
    """A prefix the text no longer holds was looked for again after every token, to the text's end: 10,000
    messages of Qwen3 (one "<think>" at the start, then "<|im_start|>" turns) took ~8 s of a ~9 s count. 60,000
    turns here: ~1 s of CPU linear (its first few seconds quadratic would be a long wait); a generous guard."""
    text = "<think></think>" + "<|im_start|>user\nhi<|im_end|>\n" * 60_000
    started = time.thread_time()
    parts = _parts(text)
    assert sum(special for _, special in parts) == 2 + 2 * 60_000
    assert time.thread_time() - started < 15
