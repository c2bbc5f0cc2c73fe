"""Character offsets of decoded tokens, as `tiktoken.Encoding.decode_with_offsets` computes them.

For each token: the index, in the decoded text, of the first character that contains any of its bytes.
A token that starts inside a multi-byte character (its first byte is a UTF-8 continuation byte) points at
that character, the one the previous token began.

>>> text_with_offsets([b"h", b"i", b" \\xe2\\x82", b"\\xac"])
('hi €', [0, 1, 2, 3])

Not handled: invalid UTF-8 (decoding is strict, as in tiktoken: UnicodeDecodeError).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["text_with_offsets"]


def text_with_offsets(token_bytes: Sequence[bytes]) -> tuple[str, list[int]]:
    characters = 0  # characters started by the bytes seen so far (each non-continuation byte starts one)
    offsets = []
    for token in token_bytes:
        starts_inside = 0x80 <= token[0] < 0xC0 if token else False
        offsets.append(max(0, characters - starts_inside))
        characters += sum(1 for byte in token if not 0x80 <= byte < 0xC0)
    return b"".join(token_bytes).decode("utf-8", errors="strict"), offsets
