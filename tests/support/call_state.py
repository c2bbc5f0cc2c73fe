"""A stand-in for the service's CallState whose deadline and liveness a test sets.

    >>> call = FakeCall(remaining=0.5)
    >>> call.time_remaining(), call.is_active()
    (0.5, True)
    >>> call.active = False  # the client went away
"""

from __future__ import annotations


class FakeCall:
    """A CallState whose deadline and liveness the test sets."""

    def __init__(self, remaining: float | None = None, active: bool = True) -> None:
        self.remaining, self.active = remaining, active

    def time_remaining(self) -> float | None:
        return self.remaining

    def is_active(self) -> bool:
        return self.active
