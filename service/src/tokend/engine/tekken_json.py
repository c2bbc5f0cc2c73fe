"""Mistral's Tekken tokenizer files (`tekken.json`) read as mistral-common's `Tekkenizer` reads them.

Tekken is tiktoken underneath: `vocab` holds (rank, base64 bytes) entries, cut to `default_vocab_size -
default_num_special_tokens`, merged by tiktoken's rule with the file's own `pattern`. The first
`default_num_special_tokens` ids are special tokens (the file's `special_tokens`, or for files up to v7
mistral-common's 20 defaults, then `<SPECIAL_n>` fillers), so a vocabulary token's id is its rank plus
that number. Shifting every rank by the same number keeps their order, so the shifted ranks under
tiktoken's rule give Tekken's ids directly.

mistral-common never produces a special token from text; tokend applies tiktoken's policy to them like to
any special token: `encode(text, disallowed_special=())` is mistral-common's `encode(text, bos=False,
eos=False)`, and the default refuses text that contains one.

>>> vocab = [{"rank": rank, "token_bytes": base64.b64encode(bytes([rank])).decode()} for rank in range(256)]
>>> data = json.dumps({"config": {"pattern": r"\\S+|\\s+", "default_vocab_size": 256 + 3,
...                               "default_num_special_tokens": 3, "version": "v7"},
...                    "vocab": vocab, "special_tokens": [{"rank": 0, "token_str": "<unk>"},
...                    {"rank": 1, "token_str": "<s>"}, {"rank": 2, "token_str": "</s>"}]}).encode()
>>> tekken = read_tekken_json(data, name="toy")
>>> tekken.model.special_tokens["<s>"], tekken.bos_token, tekken.model.vocabulary[b"h"]  # ids: rank + 3
(1, '<s>', 107)

Not handled: the image and audio settings of multimodal files (they do not change how text tokenizes).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from ..errors import ModelFormatError
from .byte_level_model import ByteLevelModel, TokenizerFile
from .pre_tokenizer import Split

__all__ = ["read_tekken_json", "TEKKEN_DEFAULT_SPECIAL_TOKENS", "MAX_SPECIAL_TOKENS"]

# mistral-common's Tekkenizer.DEPRECATED_SPECIAL_TOKENS (ranks 0..19), used when the file lists none.
TEKKEN_DEFAULT_SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]", "[IMG_END]", "[PREFIX]", "[MIDDLE]",
    "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[TOOL_CONTENT]",
)
_FILLER = "<SPECIAL_{id}>"
# Tekken files have 1,000 special-token slots; a slot is a token string and a dict entry (~150 bytes), so a
# 122 KB file asking for 4,000,000 of them made 1 GB before anything else was checked.
MAX_SPECIAL_TOKENS = 65_536
_VERSION = re.compile(r"^v(\d+)$")


def _kind(value: Any) -> str:
    """A short description of a JSON value for an error message (never the whole of a large value)."""
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)[:40] if not isinstance(value, float) else repr(value)
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, dict):
        return "an object with keys " + ", ".join(repr(key[:20]) for key in list(value)[:4])
    return f"a {type(value).__name__}"


def read_tekken_json(data: bytes, *, name: str) -> TokenizerFile:
    """The Tekken model in `data` (the tekken.json bytes); ModelFormatError names what does not fit."""
    def fail(problem: str):
        raise ModelFormatError(f"tekken.json of {name!r}: {problem}")

    try:
        document: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        fail(f"is not JSON: {error}")
    except RecursionError:
        fail("is not JSON a parser takes: it nests too deeply")
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        fail("has no config object")
    pattern = config.get("pattern")
    if not isinstance(pattern, str):
        fail(f"config.pattern is {_kind(pattern)}, not a string")
    sizes = {}
    for field in ("default_vocab_size", "default_num_special_tokens"):
        value = config.get(field)
        if type(value) is not int:  # not a float (Infinity, NaN, 1e300), bool or string
            fail(f"config.{field} is {_kind(value)}, not an integer")
        sizes[field] = value
    vocab_size, num_special = sizes["default_vocab_size"], sizes["default_num_special_tokens"]
    if not 0 < num_special <= MAX_SPECIAL_TOKENS:  # each slot becomes a token string: bound them before making any
        fail(f"config.default_num_special_tokens = {num_special} is outside 1..{MAX_SPECIAL_TOKENS:,} (Tekken files have 1,000)")
    version = _VERSION.match(str(config.get("version", "")))
    if version is None:
        fail(f"config.version {config.get('version')!r} is not a Tekken version such as 'v3'")
    listed = document.get("special_tokens")
    if listed is None:
        if int(version.group(1)) > 7:
            fail(f"lists no special_tokens, which a {version.group()} file must (mistral-common refuses it too)")
        specials = list(TEKKEN_DEFAULT_SPECIAL_TOKENS)
    else:
        if not isinstance(listed, list):
            fail("special_tokens is not a list")
        for index, entry in enumerate(listed):  # checked before sorting: a rank "a" beside a rank 1 does not sort
            if not isinstance(entry, dict) or type(entry.get("rank")) is not int or not isinstance(entry.get("token_str"), str):
                fail(f"special_tokens[{index}] is not a {{rank, token_str}} object with an integer rank and a string "
                     f"token_str (it is {_kind(entry)})")
        ordered = sorted(listed, key=lambda entry: entry["rank"])
        if [entry["rank"] for entry in ordered] != list(range(len(ordered))):
            fail("special_tokens must have the ranks 0, 1, 2, ... without gaps")
        specials = [entry["token_str"] for entry in ordered]
    if not 0 < len(specials) <= num_special or len(set(specials)) != len(specials):
        fail(f"has {len(specials)} special tokens for {num_special} slots (they must be distinct and fit)")
    vocab = document.get("vocab")
    inner_size = vocab_size - num_special
    if not isinstance(vocab, list) or not 256 <= inner_size <= len(vocab):
        fail(f"needs at least default_vocab_size - default_num_special_tokens = {inner_size} (>= 256) vocab entries")
    specials += [_FILLER.format(id=rank) for rank in range(len(specials), num_special)]
    vocabulary: dict[bytes, int] = {}
    for rank, entry in enumerate(vocab[:inner_size]):
        try:
            token = base64.b64decode(entry["token_bytes"], validate=True)
            listed_rank = entry["rank"]
        except (KeyError, TypeError, ValueError, binascii.Error) as error:
            fail(f"vocab[{rank}] is not a {{rank, token_bytes}} entry ({error})")
        if listed_rank != rank or (rank < 256 and token != bytes([rank])) or token in vocabulary:
            fail(f"vocab[{rank}] has rank {listed_rank!r} and bytes {token[:16]!r}: ranks must be 0, 1, ... with "
                 "the 256 single bytes first and no token twice")
        vocabulary[token] = rank + num_special
    model = ByteLevelModel(
        name,
        vocabulary=vocabulary,
        pre_tokenizer=(Split(pattern, keep_gaps=False),),
        special_tokens={text: rank for rank, text in enumerate(specials)},
    )
    return TokenizerFile(model, bos_token="<s>" if "<s>" in specials else None,
                         eos_token="</s>" if "</s>" in specials else None)
