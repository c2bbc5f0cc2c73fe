"""Whether this worker answers Tokenizer calls now: starting → serving → draining.

One object holds the state and keeps the three views of it in step: the grpc.health.v1 status
(overall "" and ``tokend.v1.Tokenizer``), the ``tokend_ready`` gauge, and the gate that turns calls
away with UNAVAILABLE (ServiceUnavailable) while starting or draining (``AvailabilityInterceptor``
applies it to every Tokenizer call).

    >>> availability = Availability()
    >>> availability.require_serving()
    Traceback (most recent call last):
    ...
    tokend.service.errors.ServiceUnavailable: models are still loading; retry shortly
"""

from __future__ import annotations

import enum
import threading
from typing import Any

from tokend_api import SERVICE_NAME

from tokend.service.errors import ServiceUnavailable

__all__ = ["Availability", "Phase"]


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class Availability:
    """The worker's phase; ``health`` is a grpc_health HealthServicer (or None), ``ready_gauge`` a Gauge."""

    def __init__(self, *, health: Any = None, ready_gauge: Any = None) -> None:
        self._lock = threading.Lock()
        self._phase = Phase.STARTING
        self._health = health
        self._ready_gauge = ready_gauge
        self._publish()

    @property
    def phase(self) -> Phase:
        return self._phase

    def serving(self) -> None:
        """Models are loaded: answer calls (ignored once draining)."""
        with self._lock:
            if self._phase is Phase.STARTING:
                self._phase = Phase.SERVING
                self._publish()

    def draining(self) -> None:
        """Shutting down: health NOT_SERVING, new calls refused; calls already running finish."""
        with self._lock:
            self._phase = Phase.DRAINING
            self._publish()

    def require_serving(self) -> None:
        phase = self._phase
        if phase is Phase.STARTING:
            raise ServiceUnavailable("models are still loading; retry shortly")
        if phase is Phase.DRAINING:
            raise ServiceUnavailable("this worker is shutting down; retry (another worker or replica will answer)")

    def _publish(self) -> None:
        from grpc_health.v1 import health_pb2

        serving = self._phase is Phase.SERVING
        if self._health is not None:
            status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
            self._health.set("", status)
            self._health.set(SERVICE_NAME, status)
        if self._ready_gauge is not None:
            self._ready_gauge.set(1 if serving else 0)
