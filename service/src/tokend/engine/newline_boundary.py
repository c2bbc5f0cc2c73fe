"""Where an encoding's split provably cuts after a newline: the rule that lets the plain-chat walk
(engine/message_counts) count a role's fixed text once and each message's content on its own.

For the split patterns listed here, and text `prefix + content` where `prefix` ends in "\\n":

    split(prefix + content) == split(prefix) + split(content)

whenever `content` is empty or its first character is neither whitespace (`str.isspace`) nor one of the
pattern's *joining* characters. Then `count_ordinary(prefix + content) == count_ordinary(prefix) +
count_ordinary(content)`, since BPE runs on each piece alone. The argument, pattern by pattern, is in
docs/decisions.md ("A role's fixed text counted once"); a pattern not listed (GPT-2's, whose `\\s+(?!\\S)`
splits a trailing "\\n\\n" differently at the end of text; several Splits in a row; a prefix space) has no
rule, and the walk joins prefix and content as before.

    >>> from tokend import get_encoding
    >>> newline_joining(get_encoding("cl100k_base")), newline_joining(get_encoding("o200k_base"))
    ('', '/')
    >>> newline_joining(get_encoding("r50k_base")) is None
    True
    >>> separable_after("user\\n", "Hello", newline_joining(get_encoding("o200k_base")))
    True
    >>> separable_after("user\\n", " Hello", ""), separable_after("user\\n", "/path", "/")
    (False, False)
"""

from __future__ import annotations

from typing import Any

from tokend.engine.patterns import (
    CL100K_HF_PATTERN,
    GPT4_PATTERN,
    LLAMA3_PATTERN,
    LLAMA_CPP_PRE_TOKENIZERS,
    O200K_PATTERN,
    QWEN2_PATTERN,
    TEKKEN_PATTERN,
)

__all__ = ["NEWLINE_JOINING", "newline_joining", "separable_after"]

# pattern -> the characters besides whitespace that, first in a content, may join a piece that holds the
# prefix's final "\n" (o200k and Tekken: ` ?[^\s\p{L}\p{N}]+[\r\n/]*` takes "/" after a newline)
NEWLINE_JOINING: dict[str, str] = {
    GPT4_PATTERN: "",  # cl100k_base; tiktoken's Llama 3
    CL100K_HF_PATTERN: "",
    LLAMA3_PATTERN: "",
    QWEN2_PATTERN: "",
    LLAMA_CPP_PRE_TOKENIZERS["llama-bpe"][0]: "",
    LLAMA_CPP_PRE_TOKENIZERS["qwen2"][0]: "",
    O200K_PATTERN: "/",
    TEKKEN_PATTERN: "/",
}


def newline_joining(encoding: Any) -> str | None:
    """The joining characters of `encoding`'s split (see the module docstring), or None when the rule does
    not apply to it: not a byte-level `Encoding`, a pre-tokenizer other than one Split of a listed pattern."""
    from tokend.engine.encoding import Encoding
    from tokend.engine.pre_tokenizer import Split

    if type(encoding) is not Encoding or encoding._prefix_space or encoding._native_splitter is None:
        return None
    steps = encoding._model.pre_tokenizer
    if len(steps) != 1 or type(steps[0]) is not Split:
        return None
    return NEWLINE_JOINING.get(steps[0].pattern)


def separable_after(prefix: str, content: str, joining: str | None) -> bool:
    """Whether `prefix + content` splits as `prefix` and `content` apart, by the rule (what the walk checks
    in C for each message)."""
    if joining is None or not prefix.endswith("\n"):
        return False
    return not content or not (content[0].isspace() or content[0] in joining)
