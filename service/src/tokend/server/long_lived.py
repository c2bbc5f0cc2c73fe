"""`freeze_long_lived_objects`: a worker's start-up objects leave the cyclic garbage collector's view.

    >>> import gc
    >>> from tokend.server.long_lived import freeze_long_lived_objects
    >>> frozen = freeze_long_lived_objects()
    >>> frozen > 1000, len(gc.get_objects()) < frozen  # what the collector still walks: objects made since
    (True, True)
    >>> gc.unfreeze()  # (only so that this example leaves the interpreter as it found it)

A full collection walks every object the collector tracks with the GIL held, and a worker tracks ~47,000
once its modules are imported (grpcio, protobuf, prometheus_client, tokend): 11-16 ms a collection on this
project's 2-core machine, during which every call of the worker waits. Those objects live as long as the
process, so walking them finds nothing. Called once, after the imports and the server's construction and
before the models load: a model version replaced by a hot reload must stay collectable (a frozen cycle is
never freed), and what a worker allocates later is collected as before.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_long_lived_objects"]


def freeze_long_lived_objects() -> int:
    """Move every object the collector tracks now to its permanent generation; how many (for the log)."""
    gc.collect()  # garbage of the start-up goes first: frozen, it would never be freed
    before = gc.get_freeze_count()
    gc.freeze()
    return gc.get_freeze_count() - before
