"""GPT-2's byte-level alphabet: the 256 printable characters that stand for the 256 bytes in the text form of
byte-level vocabularies (GPT-2's encoder.json and vocab.bpe, Hugging Face tokenizer.json, GGUF token lists).

Printable bytes stand for themselves; the others (controls, space, 0x7f-0xa0, 0xad) are shifted to U+0100..
(so the space is "Ġ", the newline "Ċ"). This is `bytes_to_unicode` of GPT-2's encoder.py, which Hugging
Face's ByteLevel pre-tokenizer and tiktoken's `data_gym_to_mergeable_bpe_ranks` reproduce.

>>> token_text_to_bytes("Ġhello")
b' hello'
>>> bytes_to_token_text(b" hello\\n")
'ĠhelloĊ'
>>> token_text_to_bytes("<｜begin▁of▁sentence｜>") is None   # not written in the alphabet
True

Not handled: vocabularies written in other alphabets (sentencepiece's "▁" pieces are another family).
"""

from __future__ import annotations

__all__ = ["BYTE_TO_CHAR", "CHAR_TO_BYTE", "bytes_to_token_text", "token_text_to_bytes"]


def _alphabet() -> list[str]:
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in chars:
            chars[byte] = chr(256 + shifted)
            shifted += 1
    return [chars[byte] for byte in range(256)]


BYTE_TO_CHAR: tuple[str, ...] = tuple(_alphabet())  # byte -> its character
CHAR_TO_BYTE: dict[str, int] = {char: byte for byte, char in enumerate(BYTE_TO_CHAR)}  # character -> byte
# str.translate table to the latin-1 character of each byte; characters outside the alphabet that latin-1
# could encode become U+FFFF, so `.encode("latin-1")` fails for every character outside the alphabet.
_TO_LATIN1 = {codepoint: "\uffff" for codepoint in range(256)} | {
    ord(char): chr(byte) for char, byte in CHAR_TO_BYTE.items()
}


def token_text_to_bytes(text: str) -> bytes | None:
    """The bytes a token's text stands for, or None when a character is outside the alphabet (such a
    vocabulary entry can never come out of byte-level BPE; Hugging Face decodes it as its own UTF-8)."""
    try:
        return text.translate(_TO_LATIN1).encode("latin-1")
    except UnicodeEncodeError:
        return None


def bytes_to_token_text(data: bytes) -> str:
    """The text form of a token's bytes."""
    return "".join(BYTE_TO_CHAR[byte] for byte in data)
