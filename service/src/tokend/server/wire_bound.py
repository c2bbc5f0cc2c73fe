"""The largest Tokenizer request message any acceptable request can be, so a larger one is refused before it
is parsed.

Why: a request is measured against ``max_request_bytes`` by the service, after protobuf has built it (and the
servicer has turned it into Python values). Within ``--max-message-bytes`` (16 MiB) that was seconds of CPU and
hundreds of MiB: 1,400,000 chat messages of one character (15 MB) cost 1.9 s and +556 MiB before the
RESOURCE_EXHAUSTED for max_request_bytes. Bytes on the wire that no acceptable request can need are refused
from the message's length alone (``deferred_parse``), with the same status and limit name.

What the wire may hold beyond what the service counts (``service/limits.py``, ``service/chat.py``):

- token ids count ``BYTES_PER_TOKEN_ID`` (4) each; on the wire one is at most 5 bytes (a field tag and a 4-byte
  varint, when a client does not pack them; every vocabulary's ids are below 2**28) — ``WIRE_BYTES_PER_INPUT_BYTE``
  = 5/4, the largest ratio of any counted field;
- text, raw bytes and listed special tokens count their bytes; each has a tag and a length (the special
  tokens' at most 2 sets x 16,384 x 6 bytes: ``WIRE_ENVELOPE_BYTES``, with the model reference and flags);
- each batch item (an input, an id list, a conversation with its flags) adds up to 2 tags and 2 lengths
  (``WIRE_BYTES_PER_ITEM``), and counts nothing of its own;
- chat messages, content parts and tool calls count ``ENTRY_BYTES`` per entry plus 4 entries' worth for their
  brackets, keys by their names (a message ``MESSAGE_BYTES`` more): at least the tags and lengths they take on
  the wire (a message of role "user" and text "x" is 11 bytes of protobuf and counts 52).

So a message within ``max_request_bytes`` and ``max_batch_items`` is at most
``5/4 x max_request_bytes + WIRE_BYTES_PER_ITEM x max_batch_items + WIRE_ENVELOPE_BYTES`` (defaults: 10.3 MiB).

    >>> largest_request_message(max_request_bytes=8 << 20, max_batch_items=1024)
    10764288

Not covered (refused although the service might have counted them under the limit): padding no client needs —
unknown fields, a repeated singular field, JSON text in ``tools_json`` / ``extra_json`` / ``arguments_json``
whose whitespace, escapes ("\\u003c" for "<") or long numbers make it more than 5/4 of what its values count.
Within the bound, a chat request of many tiny messages is refused from their count before it is parsed
(chat_shape.py counts them in the wire bytes; 5,000,000 empty ones cost ~0.25 s and +600 MiB of parse).
"""

from __future__ import annotations

from tokend_api import BYTES_PER_TOKEN_ID

from tokend.service.special_policy import MAX_LISTED_TOKENS

__all__ = ["largest_request_message", "WIRE_BYTES_PER_ID", "WIRE_BYTES_PER_ITEM", "WIRE_ENVELOPE_BYTES"]

# A token id sent unpacked: its field tag and a varint of at most 4 bytes.
WIRE_BYTES_PER_ID = 5
# An item's framing: its field's tag and length, and its content's (text, data, ids) — 1 + 5 each, rounded up.
WIRE_BYTES_PER_ITEM = 16
# The model reference (at most 256 characters), each listed special token's tag and length (2 sets), flags.
WIRE_ENVELOPE_BYTES = 64 * 1024 + 2 * MAX_LISTED_TOKENS * 6


def largest_request_message(*, max_request_bytes: int, max_batch_items: int) -> int:
    """The most bytes a Tokenizer request message within both limits can take on the wire."""
    counted = -(-max_request_bytes * WIRE_BYTES_PER_ID // BYTES_PER_TOKEN_ID)  # ceiling of 5/4
    return counted + WIRE_BYTES_PER_ITEM * max_batch_items + WIRE_ENVELOPE_BYTES
