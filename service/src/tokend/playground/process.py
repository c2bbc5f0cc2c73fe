"""The playground as a child of `tokend serve` (the supervisor's ``playground`` role, tokend.supervisor.roles).

    playground_main(settings, ready, 0, False)   # blocks until SIGTERM; returns the exit code
"""

from __future__ import annotations

from typing import Any

from tokend.settings import Settings

from .server import serve_playground

__all__ = ["playground_main"]


def playground_main(settings: Settings, ready: Any, index: int, peers_ready: bool) -> int:
    serve_playground(settings, ready)
    return 0
