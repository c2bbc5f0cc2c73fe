"""Polling a condition a test cannot be told about (a metric, a log line, a process's state) until it holds.

    >>> wait_for(lambda: 42, timeout=1.0, what="the answer")
    42

It returns the predicate's first truthy value, or raises AssertionError naming `what` after `timeout` seconds: the
bound is for a stuck system, not a timing claim (tests assert outcomes, not speed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.05


def wait_for(predicate: Callable[[], T], timeout: float, what: str) -> T:
    """The predicate's first truthy value, polled every POLL_SECONDS until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
