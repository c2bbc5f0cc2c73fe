"""`fit_file_limit`: a worker's open-file limit raised to hold its connection cap and the files it needs.

Each gRPC connection is a file descriptor. A worker out of descriptors cannot accept a health check, read
a registry file or write a metrics file, so its soft limit (often 1,024) is raised, up to the hard limit, to
``max_connections`` plus room for everything else; where the hard limit is lower, the connection cap is lowered
to what it holds (``connection_cap``) and the operator is told. Kept, such a cap did not protect: a flood used
every descriptor and new clients hung until their deadline (gRPC could not accept them) instead of being refused.

gRPC holds the cap on each address it listens on (``grpc_server.listener_count``: ``--host localhost`` is two),
so the descriptors needed, and the cap the limit holds, count every listener: a cap fitted to the limit but held
on two listeners used up the descriptors again (hard limit 600, ``localhost``: 2 x 344 connections; a flood of
400 on each address took all 600 and a new client hung 10 s until its deadline).

    >>> from tokend.server.file_limit import FILES_BESIDE_CONNECTIONS, fit_file_limit
    >>> soft, hard = fit_file_limit(100)
    >>> soft >= min(hard, 100 + FILES_BESIDE_CONNECTIONS)
    True
"""

from __future__ import annotations

import resource

__all__ = ["FILES_BESIDE_CONNECTIONS", "fit_file_limit", "connection_cap"]

# A worker's own descriptors: the listening socket, epoll and wake-up pipes of gRPC's threads, prometheus'
# multiprocess files (one per metric kind), registry payloads while loading, logs: ~40 seen; room for more.
FILES_BESIDE_CONNECTIONS = 256


def fit_file_limit(connections: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to hold ``connections`` (on every listener together) and the worker's own files
    (never lower it); the (soft, hard) limits after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = connections + FILES_BESIDE_CONNECTIONS
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        if target > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft, hard


def connection_cap(max_connections: int, open_files: int, listeners: int = 1) -> int:
    """The connections a worker may hold on each of its ``listeners`` with ``open_files`` descriptors:
    ``max_connections``, or fewer where all of them together would not leave ``FILES_BESIDE_CONNECTIONS`` for the
    rest (at least 1).

        >>> connection_cap(2048, 1024)
        768
        >>> connection_cap(2048, 1024, listeners=2)
        384
    """
    if open_files == resource.RLIM_INFINITY:
        return max_connections
    return max(1, min(max_connections, (open_files - FILES_BESIDE_CONNECTIONS) // listeners))
