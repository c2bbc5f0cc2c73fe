"""The process model of `tokend serve`: a supervisor that runs the gRPC workers and the playground as
spawned children (one slot and backoff code for both), serves the aggregated /metrics, and drains on
SIGTERM. It imports none of the front-ends: ``roles.py`` names their entry points.

    from tokend.supervisor import Supervisor
    Supervisor(Settings.load()).run()
"""

from tokend.supervisor.supervisor import EXIT_CONFIG_ERROR, Supervisor

__all__ = ["EXIT_CONFIG_ERROR", "Supervisor"]
