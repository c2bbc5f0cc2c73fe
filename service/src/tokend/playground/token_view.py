"""What the page shows for one token: its id, its bytes, its text if those bytes are whole UTF-8, special or not.

A byte-level BPE token need not be valid UTF-8 on its own: a CJK character or an emoji is often split
across two or three tokens. Such a token gets `"text": null` and the page shows its bytes instead of
guessing a character. Nothing here knows HTTP; the API module turns these into JSON.

A SentencePiece token's bytes are what it adds to the text in the middle of it: `▁Hello` is b" Hello" (the
page marks the space), a byte-fallback piece `<0xE6>` is b"\xe6" (shown as its byte), and a control piece
such as `<s>` adds nothing, so a special token without bytes is shown by its name.

Not handled: grouping consecutive partial tokens back into the character they form (the ids and bytes
are what the user asked to see; the decoded text is in the text box above them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol


class _TokenBytes(Protocol):
    def decode_single_token_bytes(self, token: int) -> bytes: ...


def describe_token(encoding: _TokenBytes, token_id: int, special_names: Mapping[int, str]) -> dict[str, Any]:
    """One token as the page needs it; `special_names` maps the id of each special token to its text.

    >>> from tokend import get_encoding
    >>> describe_token(get_encoding("cl100k_base"), 9906, {})
    {'id': 9906, 'hex': '48656c6c6f', 'text': 'Hello', 'special': False}
    """
    data = encoding.decode_single_token_bytes(token_id)
    special = special_names.get(token_id)
    if special is not None and not data:
        return {"id": token_id, "hex": "", "text": special, "special": True}
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # part of a multi-byte character: the page shows the bytes
    return {"id": token_id, "hex": data.hex(), "text": text, "special": special is not None}


def describe_tokens(encoding: _TokenBytes, token_ids: Sequence[int], special_names: Mapping[int, str]) -> list[dict[str, Any]]:
    """`describe_token` for every id, in order."""
    return [describe_token(encoding, token_id, special_names) for token_id in token_ids]
