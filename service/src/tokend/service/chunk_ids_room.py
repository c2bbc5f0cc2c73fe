"""Room in a worker's work budget for the ids a Chunk call holds, taken as its chunks are made.

A Chunk answer holds every chunk's ids until it is sent, and an overlap repeats a chunk's tokens in the next
ones, so the ids grow with the overlap, not the input: 8 KB of one-byte tokens in chunks of 4,000 overlapping
by 3,999 make ~16.7 M ids before the answer limit stops them (~130 MB of lists, ~1 s of CPU), for a request
estimated (from its input) far below the size that waits at the gate. 32 such calls at once took a worker
from 1.2 to 2.2 GB, kept after (docs/decisions.md, "A hostile client against the night's service"). What the
input's own estimate covers (its ids, ``IDS_BYTES_PER_BYTE`` a byte, and a small request's allowance) is
free; past it the call holds room as an answer does (``WorkAdmission.hold``: at once, or
ServiceUnavailable, never a wait while holding memory), a step at a time, until the call ends.

    room = ChunkIdsRoom(service.admission, call, input_bytes=sum(sizes))
    for chunk in chunks:
        room.add(len(chunk.ids))     # may raise ServiceUnavailable ("this worker holds N MiB …; retry shortly")
    ...
    room.release()                   # without a front-end record; with one, the room goes at the call's end

Not counted: a ChunkStream's ids (sent a few chunks at a time), the whole text's encode (the request's estimate).
"""

from __future__ import annotations

from collections.abc import Callable

from tokend.service.admission import IDS_BYTES_PER_BYTE, SMALL_REQUEST_BYTES, WorkAdmission
from tokend.service.batch import CallState
from tokend.service.call_record import current_record

__all__ = ["ChunkIdsRoom", "CHUNK_ID_BYTES", "CHUNK_BYTES", "ROOM_STEP_BYTES"]

# A chunk's id: a list slot (the int objects are the whole text's, which the chunks' lists share): 8.2 bytes an
# id measured (tracemalloc) for 4-12 M ids. A chunk besides its ids (TextChunk, its list, spans): ~330 bytes.
CHUNK_ID_BYTES = 8
CHUNK_BYTES = 360
# Room taken a step at a time: more than a small request (which reserves nothing), few steps a call (~8 for
# the answer limit's ids).
ROOM_STEP_BYTES = 16 << 20


class ChunkIdsRoom:
    """Counts the chunks' ids and holds room for them past what the request's estimate covers."""

    def __init__(self, admission: WorkAdmission | None, call: CallState | None, *, input_bytes: int) -> None:
        self._admission = admission
        self._call = call
        self._free = IDS_BYTES_PER_BYTE * input_bytes + SMALL_REQUEST_BYTES  # bytes no room is taken for
        self.held_bytes = 0  # bytes of ids and chunks counted
        self._releases: list[Callable[[], None]] = []

    def add(self, ids: int) -> None:
        """Count one chunk of ``ids`` ids; past the free bytes, hold a step of room (ServiceUnavailable if none)."""
        self.held_bytes += CHUNK_ID_BYTES * ids + CHUNK_BYTES
        if self.held_bytes <= self._free or self._admission is None:
            return
        while self.held_bytes > self._free:
            release = self._admission.hold(ROOM_STEP_BYTES, call=self._call)
            record = current_record()
            if record is not None:
                record.at_end(release)  # the ids live until the answer is sent
                record.held_bytes += min(ROOM_STEP_BYTES, self._admission.budget_bytes)  # (what ``hold`` took)
            else:
                self._releases.append(release)
            self._free += ROOM_STEP_BYTES

    def release(self) -> None:
        """Give back the room held without a front-end record (idempotent)."""
        releases, self._releases = self._releases, []
        for release in releases:
            release()
