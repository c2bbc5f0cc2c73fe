"""The batch of a large Encode, CountTokens, Decode, Truncate, Chunk or ChunkStream request counted from its
wire bytes, and refused unparsed when it has more items than the service takes.

Why: an empty ``Input`` or ``TokenIds`` is 2 bytes on the wire. 4,900,000 of them (9.8 MB, within the wire
bound: wire_bound.py) went to protobuf, because the native readers (text_request.c, decode_request.c) leave a
request of more than 65,536 inputs to it, and cost ~2.2 s of a worker's CPU and +300-500 MiB (kept after the
answer) before ``max_batch_items`` refused them; a Decode's minutes (13 s for 800,000: protobuf's list of
empty messages grows worse than linearly, and the servicer walks it with the GIL held). native/batch_items.c
counts the records of field 2 (``inputs`` in each of these requests) with the GIL released, ~2 ns a byte, and
the service's own item limit runs on the count: the same refusal (RESOURCE_EXHAUSTED naming
``max_batch_items``), without the parse. ChunkStream refuses more than one input as its servicer does. The
strings a special-token policy lists are counted too (an empty one is 2 bytes: 4,900,000 of them cost +200 MiB
of parse before ``check_listed_count`` refused the list's length) and refused by the same check.
Counts of bytes that stop parsing are those of the records before them, refused only when already over
(protobuf would build those records before refusing the rest).

    prechecks = batch_prechecks(service)   # DeferredParse(..., prechecks=prechecks): run on the handler thread
    prechecks["Decode"](data)              # returns, or raises the service's refusal
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tokend.server._batch_items import batch_items
from tokend.server.budget_rpcs import not_one_stream_input
from tokend.service.special_policy import check_listed_count

__all__ = ["batch_prechecks", "BATCH_METHODS"]

BATCH_METHODS = ("Encode", "CountTokens", "Decode", "Truncate", "Chunk")  # each holds its inputs as field 2
# method -> the field number of its SpecialTokenPolicy (0: none)
_POLICY_FIELDS = {"Encode": 3, "CountTokens": 3, "Decode": 0, "Truncate": 5, "Chunk": 6, "ChunkStream": 6}


def batch_prechecks(service: Any) -> dict[str, Callable[[bytes], None]]:
    """{method: check(wire bytes)}: each refuses a batch ``service.limits`` refuses (ChunkStream: more than one
    input, as its servicer does)."""

    def precheck(method: str) -> Callable[[bytes], None]:
        policy_field = _POLICY_FIELDS[method]

        def check(data: bytes) -> None:
            items, allowed, disallowed, _complete = batch_items(data, policy_field)
            if method == "ChunkStream":
                if items > 1:
                    raise not_one_stream_input(items)
            else:
                service.limits.check_request(items=items, input_bytes=0)
            check_listed_count(allowed, "special_tokens.allowed.tokens")
            check_listed_count(disallowed, "special_tokens.disallowed.tokens")

        return check

    return {method: precheck(method) for method in (*BATCH_METHODS, "ChunkStream")}
