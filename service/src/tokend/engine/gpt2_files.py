"""GPT-2's own tokenizer files: `encoder.json` (token text -> id) and `vocab.bpe` (the merges, in order),
both written in the byte-level alphabet; the format of GPT-2's encoder.py.

They become tiktoken ranks exactly as tiktoken's `data_gym_to_mergeable_bpe_ranks` does it: the 256
single bytes first (printable ones in byte order, then the rest), then one rank per merge line in file
order; encoder.json must give every token that same id (tiktoken asserts it: its merge rule needs rank =
merge order). `<|endoftext|>` and `<|startoftext|>` in encoder.json are special tokens.

>>> import json
>>> from tokend.engine.byte_level_alphabet import BYTE_TO_CHAR
>>> encoder = {char: rank for rank, char in enumerate(sorted(BYTE_TO_CHAR))} | {"hi": 256, "Ġhi": 257,
...                                                                          "<|endoftext|>": 258}
>>> files = read_gpt2_files(json.dumps(encoder).encode(), "#version: 0.2\\nh i\\nĠ hi\\n".encode())
>>> files.ranks[b" hi"], files.special_tokens
(257, {'<|endoftext|>': 258})

Not handled: encoder.json files whose ids are not the merge order (import such a model as a tokenizer.json,
whose merge rule is the merge list's); reading the files (callers pass their bytes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import ModelFormatError
from .byte_level_alphabet import token_text_to_bytes

__all__ = ["Gpt2Files", "read_gpt2_files", "GPT2_SPECIAL_TOKENS"]

# encoder.json entries that are special tokens, not mergeable ones (tiktoken drops exactly these).
GPT2_SPECIAL_TOKENS = ("<|endoftext|>", "<|startoftext|>")


@dataclass(frozen=True)
class Gpt2Files:
    ranks: dict[bytes, int]  # token bytes -> rank (= id)
    special_tokens: dict[str, int]  # text -> id


def _single_byte_order() -> list[int]:
    printable = [byte for byte in range(256) if chr(byte).isprintable() and chr(byte) != " "]
    return printable + [byte for byte in range(256) if byte not in printable]


def read_gpt2_files(encoder_json: bytes, vocab_bpe: bytes) -> Gpt2Files:
    """Ranks and special tokens of GPT-2-format files; ModelFormatError names what does not fit."""
    try:
        encoder = json.loads(encoder_json)
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFormatError(f"encoder.json is not JSON: {error}") from None
    if not isinstance(encoder, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in encoder.items()):
        raise ModelFormatError("encoder.json must be an object mapping token text to integer ids")
    try:
        lines = vocab_bpe.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ModelFormatError(f"vocab.bpe is not UTF-8 text: {error}") from None
    ranks = {bytes([byte]): rank for rank, byte in enumerate(_single_byte_order())}
    for line_number, line in enumerate(lines, start=1):
        if not line or (line_number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ModelFormatError(f"vocab.bpe, line {line_number}: {line[:80]!r} is not `left right`")
        merged = _token_bytes(parts[0], "vocab.bpe", line_number) + _token_bytes(parts[1], "vocab.bpe", line_number)
        if merged in ranks:
            raise ModelFormatError(f"vocab.bpe, line {line_number}: the merge {line!r} makes a token made before")
        ranks[merged] = len(ranks)
    special_tokens = {text: encoder[text] for text in GPT2_SPECIAL_TOKENS if text in encoder}
    encoder_ranks = {_token_bytes(text, "encoder.json", None): token_id for text, token_id in encoder.items()
                     if text not in special_tokens}
    if encoder_ranks != ranks:
        differing = next((token for token, rank in ranks.items() if encoder_ranks.get(token) != rank), None)
        raise ModelFormatError(
            f"encoder.json does not number the tokens in vocab.bpe's merge order ({len(encoder_ranks)} tokens vs "
            f"{len(ranks)} from the merges; first difference: {differing!r}); tiktoken's rule needs id = merge "
            "rank: import this model as a Hugging Face tokenizer.json instead"
        )
    return Gpt2Files(ranks, special_tokens)


def _token_bytes(text: str, where: str, line_number: int | None) -> bytes:
    data = token_text_to_bytes(text)
    if data is None or not data:
        at = f", line {line_number}" if line_number else ""
        raise ModelFormatError(f"{where}{at}: token {text[:40]!r} is not written in GPT-2's byte-level alphabet")
    return data
