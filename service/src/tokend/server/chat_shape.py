"""EncodeChat's and CountChatTokens' size in what costs beyond bytes — conversations, messages, content
parts, tool calls, and the containers of JSON fields — checked from a large request's wire bytes, before
protobuf parses it.

Why: an empty chat message, content part or tool call is 2 bytes of protobuf and ~120-500 bytes once parsed
and made a dict; "{}," in a JSON field is 3 bytes and a 64-byte dict once loaded. 5,000,000 such records
(10 MB) are within the wire bound (wire_bound.py): 0.25-20 s of worker CPU and 0.6-2.5 GiB before the
service refused them from their count (four at once pass a 1536 MiB pod's limit). native/chat_shape.c counts
them with the GIL released (~12 ms for 10 MB, nothing allocated), and the service's own check runs on the
least those counts make the request count (``TokenizerService.check_chat_totals``): the refusal the parsed
request would get, with its status and limit name, without the parse. Bytes protobuf would refuse are refused
too, unparsed (INVALID_ARGUMENT naming the request, as for any bytes that do not parse).

The counts are protobuf's (repeated, singular and oneof fields as protobuf reads them). What may be refused
that the service would have accepted: JSON objects with repeated keys, whose every value is counted where
json.loads keeps the last (no client sends them); content parts a later `text` or an `extra_json` "content"
replaces, each counted EMPTY_PART_BYTES (40) though the message's dict no longer holds them — protobuf and
the servicer build them before they are dropped (220,000 parts and extra_json {"content": "hi"}: 440 KB,
refused, its dict counting 53 bytes; no client sends both); likewise tool calls an ``extra_json`` "tool_calls"
replaces (each counted EMPTY_TOOL_CALL_BYTES and its keys). A JSON field is counted before its syntax is checked: 100,000
"[" (not JSON) in a 100 KB request is refused for the structure it would have (RESOURCE_EXHAUSTED,
max_request_bytes) where a smaller request is refused as not JSON (INVALID_ARGUMENT naming the field).

A content part's ``type`` is read too: a typed part counts its type and key (``TYPED_PART_BYTES``), so typed
empty parts are refused unparsed where the parsed request would be refused for its bytes (168,000-209,000
such parts were parsed first: 190,000 cost 0.33-0.39 s and +45-79 MiB of the worker). Within the limits, the first part
a chat format refuses (no ``type``, or one other than "text", in a message whose content stays its parts and
has no ``extra_json``) is refused unparsed too, with the error the format gives (INVALID_ARGUMENT naming
``conversations[i].messages[j].content[k]``): 150,000 ``image_url`` parts cost 0.28-0.29 s and +39-66 MiB
before, ≤ 10 ms and +0-2 MiB now. A tool call's "id", "type" and "arguments" keys and its strings, and
each number, true, false or null of a JSON field (SCALAR_BYTES parsed, 2 bytes on the wire with its comma), count
on the wire as well (240,000 tool calls of empty strings, or 4,000,000 numbers in an arguments_json, were parsed
before their refusal: 1.45-3.3 s of worker CPU and +47-298 MiB; now ≤ 0.03 s). What
differs from the parsed request: one with several faults may be refused for that part rather than for a fault
checked before it there (an unknown model, an earlier message's role, a template error of an earlier
conversation) — it is refused all the same, naming a fault it has.

    prechecks = chat_prechecks(service)   # DeferredParse(..., prechecks=prechecks): run on the handler thread
    prechecks["CountChatTokens"](data)    # returns, or raises the service's refusal
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokend.registry.chat.messages import refused_part
from tokend.server._chat_shape import chat_shape
from tokend.service import BatchItemError, InvalidRequest
from tokend.service.chat import (
    EMPTY_MESSAGE_BYTES,
    EMPTY_PART_BYTES,
    EMPTY_TOOL_CALL_BYTES,
    ENTRY_BYTES,
    JSON_COMMA_BYTES,
    JSON_CONTAINER_BYTES,
    MAX_CHAT_MESSAGES,
    MAX_CHAT_TOOLS_BYTES,
    SCALAR_BYTES,
    TYPED_PART_BYTES,
)

__all__ = ["chat_prechecks", "least_bytes", "CHAT_METHODS"]

CHAT_METHODS = ("EncodeChat", "CountChatTokens")  # both hold conversations as field 2 (chat_shape.c)


def least_bytes(shape: tuple[int, ...]) -> int:
    """The least a request with ``chat_shape``'s counts counts against max_request_bytes (service/chat.py's
    charges; an ``extra_json`` object's own braces are the message's, not a container)."""
    _, messages, _, _, parts, tool_calls, containers, commas, extra_objects = shape[:9]
    typed_parts, type_bytes = shape[11:13]
    keys, key_bytes, null_contents, lists, scalars = shape[18:23]
    return (
        EMPTY_MESSAGE_BYTES * messages + EMPTY_PART_BYTES * parts + EMPTY_TOOL_CALL_BYTES * tool_calls
        + JSON_CONTAINER_BYTES * (containers - extra_objects) + JSON_COMMA_BYTES * commas + SCALAR_BYTES * scalars
        + TYPED_PART_BYTES * typed_parts + type_bytes
        + ENTRY_BYTES * keys + key_bytes + SCALAR_BYTES * null_contents + JSON_CONTAINER_BYTES * lists
    )  # fmt: skip


def chat_prechecks(service: Any) -> dict[str, Callable[[bytes], None]]:
    """{method: check(wire bytes)} for the chat methods, each refusing what the service would refuse."""

    def precheck(method: str) -> Callable[[bytes], None]:
        def check(data: bytes) -> None:
            shape = chat_shape(data, MAX_CHAT_MESSAGES, MAX_CHAT_TOOLS_BYTES)
            if shape is None:
                raise InvalidRequest("request", f"the request bytes do not parse as the {method} request message (malformed protobuf)")
            conversations, _, first_over, over_by = shape[:4]
            first_tools, tools_bytes = shape[9:11]
            service.check_chat_totals(
                conversations, None if first_over < 0 else (first_over, over_by), least_bytes(shape),
                None if first_tools < 0 else (first_tools, tools_bytes),
            )  # fmt: skip
            refusal = _refused_part(data, shape[13:18])
            if refusal is not None:
                raise refusal

        return check

    return {method: precheck(method) for method in CHAT_METHODS}


def _refused_part(data: bytes, refused: tuple[int, ...]) -> BatchItemError | None:
    """The error the chat formats give the part ``chat_shape`` found (as the service raises it: under its
    conversation), or None: none found, or its type is not UTF-8 (protobuf refuses the bytes; left to it)."""
    conversation, message, part, type_start, type_length = refused
    if conversation < 0:
        return None
    kind = None
    if type_start >= 0:
        try:
            kind = data[type_start : type_start + type_length].decode("utf-8")
        except UnicodeDecodeError:
            return None
    return BatchItemError(f"conversations[{conversation}]", conversation, refused_part(message, part, kind))
