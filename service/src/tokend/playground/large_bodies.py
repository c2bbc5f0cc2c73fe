"""Places for the playground's large request bodies: at most eight read, parsed and answered at once.

Why: a body may be 6 × ``max_request_bytes`` + 64 KiB (~48 MiB: JSON spells a byte as "\\u0000") and the
playground serves up to 256 connections, each on its own thread. A body's parse holds several times its bytes
(the bytes, their str, the parsed values) until its answer is written, and the service's work gate sees the
request only after the parse: 64 bodies of 40 MB sent at once took the playground from 964 to 1,822-2,280 MiB.
gRPC bounds the same thing with eight places for large request messages (server/deferred_parse.py); this is
that bound for the JSON API, built the same way on the service's gate (a budget of places, one each).

A body whose Content-Length is ``LARGE_BODY_BYTES`` or more (a body refused by its size never waits) takes a
place before it is read — the others' bytes wait in their sockets, their clients' sends held by TCP — and gives
it back when its answer has been written. Others wait, first come first served, ``MAX_LARGE_BODY_WAIT_SECONDS``
at most, and at most ``MAX_LARGE_BODIES_WAITING`` of them; past either, a 503 ``unavailable`` (retry). A body
holding a place must arrive within ``body_read_seconds`` (10 s and 1 s per MiB: 1 MiB/s), else a 408 and the
place is given back, so a client that trickles its body cannot keep a place. Rejected: a place taken after the
read, before the parse (as gRPC, whose core has read the message first): the 64 bodies' bytes then waited in
the process for their places, 391 → 2,420 MiB, worse than no gate.

    places = large_body_places()
    leave = places.reserve(1, call=None)     # waits; raises ServiceUnavailable
    try: ...                                 # parse, answer
    finally: leave()
"""

from __future__ import annotations

from tokend.service import WorkAdmission
from tokend.service.freed_memory import return_freed_memory

__all__ = ["LARGE_BODY_BYTES", "MAX_LARGE_BODIES", "MAX_LARGE_BODIES_WAITING", "MAX_LARGE_BODY_WAIT_SECONDS",
           "body_read_seconds", "large_body_places"]

LARGE_BODY_BYTES = 64 << 10  # as gRPC's DEFERRED_PARSE_BYTES: smaller bodies never wait
MAX_LARGE_BODIES = 8
MAX_LARGE_BODIES_WAITING = 16
MAX_LARGE_BODY_WAIT_SECONDS = 60.0
BODY_READ_BASE_SECONDS = 10.0
BODY_READ_BYTES_PER_SECOND = 1 << 20


def body_read_seconds(length: int) -> float:
    """How long a body of ``length`` bytes holding a place may take to arrive.

    >>> body_read_seconds(48 << 20)
    58.0
    """
    return BODY_READ_BASE_SECONDS + length / BODY_READ_BYTES_PER_SECOND


def large_body_places(
    limit: int = MAX_LARGE_BODIES, *, max_waiting: int = MAX_LARGE_BODIES_WAITING,
    max_wait_seconds: float = MAX_LARGE_BODY_WAIT_SECONDS,
) -> WorkAdmission:  # fmt: skip
    """The gate of one playground: ``limit`` places, a body taking one (``reserve(1, call=None)``). When the last
    place is given back, the memory the bodies' parses freed goes back to the system (freed_memory.py): glibc
    kept it in its arenas, and 8 bodies of 6 MB left the playground at 382 MiB (72 before) for good."""
    return WorkAdmission(limit, small_bytes=0, max_waiting=max_waiting, max_wait_seconds=max_wait_seconds,
                         answer_room_bytes=0, on_idle=return_freed_memory,
                         waiting_for="for one of the playground's places for large request bodies")
