"""The server layer of tokend: settings, supervisor, workers, gRPC servicer, interceptors, metrics, logs.

Public names: ``Settings`` / ``SettingsError`` (settings.py), ``Supervisor`` (supervisor.py),
``run_worker`` (worker.py), ``TokenizerServicer`` (servicer.py), ``to_rpc_status`` (status_mapping.py),
``ServerMetrics`` (metrics.py). Start a server with ``tokend serve`` or ``python -m tokend.server``.

Importing this package imports neither grpc nor the registry; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

from tokend.server.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "Supervisor", "run_worker", "TokenizerServicer", "to_rpc_status", "ServerMetrics"]

_LAZY = {
    "Supervisor": "tokend.server.supervisor",
    "run_worker": "tokend.server.worker",
    "TokenizerServicer": "tokend.server.servicer",
    "to_rpc_status": "tokend.server.status_mapping",
    "ServerMetrics": "tokend.server.metrics",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tokend.server' has no attribute {name!r}")
