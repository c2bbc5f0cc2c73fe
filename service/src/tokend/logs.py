"""Structured JSON logs to stderr, one object per line.

Every line has ``ts`` (RFC 3339, UTC), ``level``, ``logger``, ``event`` (a short fixed name such as
``rpc_error`` or ``model_loaded``), ``pid`` and the event's fields. Callers pass fields with
:func:`log_event`; nothing a request contains (text, token ids) is ever passed here — fields are
method names, model references, versions, status codes, durations and counts.

Not handled: log shipping, sampling, rotation (stderr is collected by the container runtime).

    >>> import logging
    >>> log_event(logging.getLogger("tokend"), "model_loaded", model="cl100k_base", version=1)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "configure_logging", "log_event"]


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; fields given to :func:`log_event` become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        event = getattr(record, "event", None)
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            # Records from other code (the registry, grpc) have a message, not an event name.
            "event": event or "log",
            "pid": record.process or os.getpid(),
        }
        if event is None:
            line["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "info") -> None:
    """Send the ``tokend`` loggers (and grpc's) to stderr as JSON lines at ``level``.

    Idempotent: calling it again replaces the handler, which a spawned worker does on start.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def log_event(logger: logging.Logger, event: str, *, level: int = logging.INFO, exc_info: Any = None, **fields: Any) -> None:
    """Log ``event`` with ``fields`` as top-level JSON keys."""
    logger.log(level, event, extra={"event": event, "fields": fields}, exc_info=exc_info)
