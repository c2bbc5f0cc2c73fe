"""One child position of the supervisor (a worker, the playground) and its restart state, the same code for
every role.

A dead child is restarted after a backoff of 0.5 s doubling to 30 s; the backoff resets once a child has
served for 60 s.

    >>> [restart_delay(n) for n in (1, 2, 3, 8, 100)]
    [0.5, 1.0, 2.0, 30.0, 30.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokend.supervisor.roles import Role

__all__ = ["Slot", "restart_delay", "BACKOFF_START", "BACKOFF_MAX", "HEALTHY_AFTER"]

BACKOFF_START = 0.5
BACKOFF_MAX = 30.0
HEALTHY_AFTER = 60.0  # seconds a child must live for its slot's backoff to reset


def restart_delay(failures: int) -> float:
    """Seconds to wait before restarting after ``failures`` consecutive early deaths (≥ 1)."""
    return min(BACKOFF_MAX, BACKOFF_START * 2 ** min(failures - 1, 16))


@dataclass
class Slot:
    """One position: the current process (if any), its ready event and its restart state."""

    role: Role
    index: int
    process: Any = None
    ready: Any = None
    started_at: float = 0.0
    failures: int = 0  # consecutive early deaths (for backoff)
    restart_at: float | None = None
    restarts: int = 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    @property
    def serving(self) -> bool:
        return self.process is not None and self.ready is not None and self.ready.is_set()

    def died(self, now: float) -> float:
        """Record a death; returns the delay before the restart."""
        self.failures += 1
        delay = restart_delay(self.failures)
        self.process = None
        self.restart_at = now + delay
        return delay

    def check_healthy(self, now: float) -> None:
        if now - self.started_at >= HEALTHY_AFTER:
            self.failures = 0
