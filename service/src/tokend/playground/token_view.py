"""What the page shows for one token: its id, its bytes, its text if those bytes are whole UTF-8, special or not.

A byte-level BPE token need not be valid UTF-8 on its own: a CJK character or an emoji is often split
across two or three tokens. Such a token gets `"text": null` and the page shows its bytes instead of
guessing a character. Nothing here knows HTTP; the API module turns these into JSON.

Not handled: grouping consecutive partial tokens back into the character they form (the ids and bytes
are what the user asked to see; the decoded text is in the text box above them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol


class _TokenBytes(Protocol):
    def decode_single_token_bytes(self, token: int) -> bytes: ...


def describe_token(encoding: _TokenBytes, token_id: int, special_ids: Collection[int]) -> dict[str, Any]:
    """One token as the page needs it.

    >>> from tokend import get_encoding
    >>> describe_token(get_encoding("cl100k_base"), 9906, set())
    {'id': 9906, 'hex': '48656c6c6f', 'text': 'Hello', 'special': False}
    """
    data = encoding.decode_single_token_bytes(token_id)
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # part of a multi-byte character: the page shows the bytes
    return {"id": token_id, "hex": data.hex(), "text": text, "special": token_id in special_ids}


def describe_tokens(encoding: _TokenBytes, token_ids: Sequence[int], special_ids: Collection[int]) -> list[dict[str, Any]]:
    """`describe_token` for every id, in order."""
    return [describe_token(encoding, token_id, special_ids) for token_id in token_ids]
