"""The kinds of child process `tokend serve` runs, named by entry point so that the supervisor imports none
of them (the children import their own code after they start).

An entry point is ``"module:function"``; the function is called in the child as
``function(settings, ready, index, peers_ready)`` and returns the child's exit code. ``ready`` (an Event) is
set once the child serves; ``peers_ready`` says whether other children of the same role already serve.

    WORKER.count(settings)       # settings.workers
    PLAYGROUND.count(settings)   # 1, or 0 when --playground-port is 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tokend.settings import Settings

__all__ = ["Role", "WORKER", "PLAYGROUND", "ROLES"]


@dataclass(frozen=True)
class Role:
    name: str  # also the prefix of its log events: worker_spawned, playground_died, ...
    entry: str  # "module:function"
    count: Callable[[Settings], int]
    package: str  # must be installed for the role to run (checked without importing it)


WORKER = Role("worker", "tokend.server.worker:worker_main", lambda settings: settings.workers, "tokend.server")
PLAYGROUND = Role(
    "playground", "tokend.playground.process:playground_main",
    lambda settings: 1 if settings.playground_port else 0, "tokend.playground",
)  # fmt: skip
ROLES = (WORKER, PLAYGROUND)
