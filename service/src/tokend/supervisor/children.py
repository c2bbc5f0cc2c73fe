"""The start of every child process of the supervisor: logging, a watch on the parent, then the role's
entry point.

The watch: a child whose supervisor was killed outright (SIGKILL, OOM kill: nothing can be forwarded)
must not serve on as an orphan holding its port. A daemon thread compares ``os.getppid()`` with the
supervisor's pid every ``PARENT_CHECK_SECONDS``; once it differs it logs ``supervisor_gone`` and sends
the child SIGTERM, so the child drains as on any shutdown.

    context.Process(target=run_child, args=("tokend.server.worker:worker_main", settings, ready, 0, False))
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import threading
from typing import Any

from tokend.logs import configure_logging, log_event
from tokend.settings import Settings

__all__ = ["run_child", "watch_parent", "PARENT_CHECK_SECONDS"]

PARENT_CHECK_SECONDS = 0.5

_log = logging.getLogger("tokend.supervisor.children")


def run_child(entry: str, settings: Settings, ready: Any, index: int, peers_ready: bool, role: str) -> None:
    """Process target: run ``entry`` (``"module:function"``) and exit with its code."""
    configure_logging(settings.log_level)
    watch_parent(os.getppid(), role=role, index=index)
    module_name, _, function_name = entry.partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    raise SystemExit(function(settings, ready, index, peers_ready) or 0)


def watch_parent(parent_pid: int, *, role: str, index: int, interval: float = PARENT_CHECK_SECONDS) -> threading.Thread:
    """Start the thread that ends this process (SIGTERM) once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            threading.Event().wait(interval)
        log_event(_log, "supervisor_gone", level=logging.WARNING, role=role, **{role: index})
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="tokend-parent-watch", daemon=True)
    thread.start()
    return thread
