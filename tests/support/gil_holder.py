"""Another thread of the process holding the GIL most of the time while using no CPU: how a worker's other
threads (or a machine with more runnable threads than cores) keep a render off the CPU, made deterministic.

    with gil_held(seconds=1.5):   # ~50 ms of every ~55 ms, for 1.5 s of wall time, whatever the machine's load
        render_something()

The holder sleeps in C without releasing the GIL (ctypes.PyDLL: the GIL is kept across the call) for
`hold_seconds` at a time, and lets go between sleeps when another thread asks for it (the interpreter's switch
interval, 5 ms): another thread gets about 5 ms of every 55. No CPU is used, so the machine's load does not
stretch the holder's share, only the other thread's few milliseconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Iterator

__all__ = ["gil_held"]

_USLEEP = ctypes.PyDLL(None).usleep  # libc's, called with the GIL held
_USLEEP.argtypes = [ctypes.c_uint]


@contextlib.contextmanager
def gil_held(seconds: float, hold_seconds: float = 0.05) -> Iterator[None]:
    """Within the block, for its first `seconds` of wall time, another thread holds the GIL `hold_seconds` at a
    time (waited for at the block's end)."""
    ends = time.monotonic() + seconds

    def hold() -> None:
        while time.monotonic() < ends:
            _USLEEP(int(hold_seconds * 1e6))

    holder = threading.Thread(target=hold, name="gil-holder", daemon=True)
    holder.start()
    try:
        yield
    finally:
        holder.join()
