"""Give the memory that large requests freed back to the system, so an idle worker is small again.

Why: glibc keeps freed memory in its arenas (one per thread that allocated, up to 8 per core); after a
burst of 8 MiB requests idle workers stayed at 548 and 903 MiB (145 MiB at start). ``malloc_trim(0)``
returns the free pages of every arena (~1-5 ms). The admission gate (tokend.service.admission) calls this
when the last large request of a worker has ended; small requests never trigger it.

Not handled: allocators other than glibc's (on musl or macOS this does nothing).

    return_freed_memory()
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["return_freed_memory"]


def _malloc_trim():  # type: ignore[no-untyped-def]
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def return_freed_memory() -> None:
    if _TRIM is not None:
        _TRIM(0)
