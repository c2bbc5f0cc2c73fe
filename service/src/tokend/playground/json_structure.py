"""What a JSON body's structure counts against ``max_request_bytes``, found before it is parsed.

Why: the body limit is 6 x max_request_bytes + 64 KiB (JSON may spell one input byte as "\\u0000"), and the
limits on items and input bytes are checked on the parsed body. So a decode body of 46 MB holding 16 M empty
lists (``[[],[],…]``) was one ``json.loads`` — 7.7 s of CPU and +1.2 GiB kept — before its 413 for
max_batch_items. Objects and lists are what parsing costs; each takes a ``[`` or ``{``, and each value after
the first in one a ``,``, outside the strings. Here they are counted at C speed — the strings cut out by one
compiled pattern, then ``bytes.count`` — and charged ``CONTAINER_BYTES`` an object or list and
``ENTRY_BYTES`` a comma; a body whose charge is over ``max_request_bytes`` plus an allowance for the batch
items' and listed tokens' own brackets and commas is refused 413 naming ``max_request_bytes``, unparsed.

No acceptable body is refused: what the service counts is never less than this charge. A chat's or tool's
object or list counts at least 8 and 2 an entry (a message 32 at least; service/chat.py), a token id 4 (its
comma: 2), text its bytes, a number in a message or tool 8; the items of a batch and listed special tokens,
which may count nothing (empty texts, empty id lists), are the allowance. Bodies of at most an eighth of
the charge limit are not scanned (no body of that size can reach it: 8 bytes a byte at most).

    >>> structure_bytes(b'{"inputs": [[], [1, 2]], "text": "[{,\\\\"}]"}')   # 4 brackets, 3 commas
    38
    >>> largest_structure(max_request_bytes=1024, max_batch_items=8)
    132224
"""

from __future__ import annotations

import re

from tokend.service.special_policy import MAX_LISTED_TOKENS

__all__ = ["structure_bytes", "largest_structure", "CONTAINER_BYTES", "ENTRY_BYTES"]

# What an object or list, and what a comma, count (service/chat.py's least for a container and an entry).
CONTAINER_BYTES = 8
ENTRY_BYTES = 2
# A JSON string: quote, then runs without a quote or backslash and escaped characters (the unrolled loop:
# linear, no backtracking; ~2 ms a MB of plain text, ~15 ms a MB of escapes).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def structure_bytes(body: bytes) -> int:
    """What the ``[``, ``{`` and ``,`` of ``body`` outside its strings count."""
    bare = _STRING.sub(b"", body)
    return CONTAINER_BYTES * (bare.count(b"[") + bare.count(b"{")) + ENTRY_BYTES * bare.count(b",")


def largest_structure(*, max_request_bytes: int, max_batch_items: int) -> int:
    """The most an acceptable body's structure counts: max_request_bytes, plus 16 bytes per batch item (its
    list or object and comma, with room), 2 per listed special token (2 sets), and 64 KiB for the envelope."""
    allowance = 16 * max_batch_items + ENTRY_BYTES * 2 * MAX_LISTED_TOKENS + 64 * 1024
    return max_request_bytes + allowance
