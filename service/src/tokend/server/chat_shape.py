"""EncodeChat's and CountChatTokens' shape — how many conversations and messages — checked from a large
request's wire bytes, before protobuf parses it.

Why: an empty chat message is 2 bytes of protobuf and ~120 bytes once parsed. 5,000,000 of them (9.5 MB)
are within the wire bound (wire_bound.py), and parsing them cost ~0.25 s and ~600 MiB of a worker before the
service refused them from their count (``check_chat_shape``); four such calls at once would pass a 1536 MiB
pod's limit. native/chat_shape.c counts the records with the GIL released (~10 ms for those 9.5 MB,
nothing allocated), and the service's own check runs on the counts (``TokenizerService.check_chat_totals``):
the same refusal, same status and limit name, without the parse. Bytes the counter does not read as
protobuf would are left to protobuf (parsed and refused as before).

    prechecks = chat_prechecks(service)   # DeferredParse(..., prechecks=prechecks): run on the handler thread
    prechecks["CountChatTokens"](data)    # returns, or raises the service's refusal
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokend.server._chat_shape import chat_shape
from tokend.service.chat import MAX_CHAT_MESSAGES

__all__ = ["chat_prechecks", "CHAT_METHODS"]

CHAT_METHODS = ("EncodeChat", "CountChatTokens")  # both hold conversations as field 2, messages as its field 1


def chat_prechecks(service: Any) -> dict[str, Callable[[bytes], None]]:
    """{method: check(wire bytes)} for the chat methods, each refusing what ``service.check_chat_totals`` refuses."""

    def check(data: bytes) -> None:
        shape = chat_shape(data, MAX_CHAT_MESSAGES)
        if shape is None:
            return  # protobuf decides
        conversations, messages, first_over, over_by = shape
        service.check_chat_totals(conversations, messages, None if first_over < 0 else (first_over, over_by))

    return {method: check for method in CHAT_METHODS}
