"""`TemplateLimits`: the bounds of one chat-template render (used by the sandbox, set by the service layer).

Its own module so that chat formats and reports can name it without importing the sandbox (and Jinja2,
~30 ms of a cold start) before a template is used.

    >>> TemplateLimits(seconds=0.5).max_chars
    16777216
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TemplateLimits"]


@dataclass(frozen=True)
class TemplateLimits:
    """Bounds for one render. The service layer passes the request's remaining deadline as `seconds`."""

    seconds: float = 1.0
    max_chars: int = 16 * 2**20  # output, and any single value the template builds
