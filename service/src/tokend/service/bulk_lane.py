"""A bulk lane: a few threads at the lowest CPU priority that do the GIL-free engine work of large items,
so the kernel runs the threads of small calls first whenever both want a core.

Why: a worker serves every call on its handler threads at one priority; while an 8 MiB Encode's merge
(in C, the GIL released) or its answer's writing runs, a well-behaved CountTokens waits for a core as much
as for the GIL. On Linux the nice value (and the scheduling policy) is per thread, and an unprivileged
thread cannot raise its priority again once lowered, so the lowering is done once, by threads that only
ever do bulk work; the service hands them an item's engine call (``run``) and the handler thread waits,
holding no GIL and no core.

- Only work that runs with the GIL released goes here (the engine's encode/count of one large item, the
  Encode answer's writer): a low-priority thread preempted while *holding* the GIL would keep every other
  thread of the worker waiting (priority inversion). Parsing the request, the special-token policy and the
  answer-size check stay on the handler thread. Measured: running whole large calls here (their protobuf
  parse and policy included), a small call's longest GIL wait beside every hostile case was 92 ms against
  59 ms without a lane (one run each; docs/decisions.md).
- niceness 19 (weight 15 against 1024 for nice 0) or ``SCHED_IDLE`` (weight 3; ``idle=True``): either way
  the lane runs at full speed on a core nobody else wants, and yields it within a scheduler tick otherwise.
- items of at least ``min_bytes`` go to the lane (``run(..., size=)``); at most ``threads`` run at once and
  at most ``max_queued`` wait, each on its caller's handler thread until its deadline: beyond that
  ``ServiceUnavailable`` (clients retry, another worker may have room); a caller that goes away or whose
  deadline passes while its work is queued gets ``CallCancelled`` / ``DeadlineExpired`` and its work never
  starts. Work that has started ends as it would on the handler thread; its caller waits for it, so the
  call's end (memory given back, metrics, logs) still follows its work.
- work submitted from a lane thread runs at once on that thread (no deadlock, no second hop).

Not handled: other platforms than Linux keep the lane's threads at normal priority (logged once).

    lane = BulkLane(threads=2)
    lane.run(lambda: sum(range(10)), call=None)               # 45, computed on a lane thread
    lane.run(lambda: 1, call=None, size=100)                  # below min_bytes: on the calling thread
    lane.close()
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from tokend.service.batch import DEADLINE_SLACK_SECONDS, CallState
from tokend.service.errors import CallCancelled, DeadlineExpired, ServiceUnavailable

__all__ = ["BulkLane", "LANE_NICENESS", "LANE_THREADS", "LANE_MAX_QUEUED"]

_log = logging.getLogger("tokend.service.bulk_lane")

LANE_NICENESS = 19
# Two: one large item at a time is what a worker's core can do; the second lets one call's answer be written
# while another's item is merged. More would only interleave them (the admission gate bounds their memory).
LANE_THREADS = 2
# Items waiting for a lane thread. Not the bound on large requests (the admission gate is: they wait there,
# before any work, and a worker has 8 handler threads); a full lane would refuse a call midway, so it is
# generous.
LANE_MAX_QUEUED = 16
# An item this large is ~5 ms of engine work or more; a 64 × 4 KB batch's items stay on the handler threads.
LANE_MIN_BYTES = 1 << 20
_POLL_SECONDS = 0.05  # how often a queued request checks that its caller is still there

Result = TypeVar("Result")


class _Job:
    __slots__ = ("fn", "context", "done", "started", "result", "error")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()  # the call's record (call_record) goes with its work
        self.done = threading.Event()
        self.started = False
        self.result: Any = None
        self.error: BaseException | None = None


class BulkLane:
    """The bulk threads of one worker (thread-safe). ``niceness`` 1–19, or ``idle=True`` for SCHED_IDLE."""

    def __init__(
        self,
        *,
        threads: int = LANE_THREADS,
        niceness: int = LANE_NICENESS,
        idle: bool = False,
        max_queued: int = LANE_MAX_QUEUED,
        min_bytes: int = LANE_MIN_BYTES,
        name: str = "bulk",
        work: str = "large requests",
        advice: str = "retry shortly, or send smaller requests",
    ) -> None:
        """``name``: of its threads (``tokend-<name>-<index>``); ``work``, ``advice``: what a caller refused
        because the queue is full is told it waits for and what to do."""
        self.min_bytes = min_bytes
        self.work = work
        self.advice = advice
        self.niceness = niceness
        self.idle = idle
        self.max_queued = max_queued
        self._condition = threading.Condition()
        self._queue: deque[_Job] = deque()
        self._closed = False
        self._local = threading.local()
        self.running = 0
        self._threads = [
            threading.Thread(target=self._serve, name=f"tokend-{name}-{index}", daemon=True) for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queued(self) -> int:
        """Items waiting for a lane thread."""
        return len(self._queue)

    def on_lane(self) -> bool:
        """True on one of this lane's threads."""
        return getattr(self._local, "on_lane", False)

    def run(self, fn: Callable[[], Result], *, call: CallState | None, size: int | None = None) -> Result:
        """``fn()`` on a lane thread (in the caller's context variables); its result, or its exception.
        With ``size`` (bytes of the item it works on), only work of at least ``min_bytes`` goes there."""
        if self.on_lane() or (size is not None and size < self.min_bytes):
            return fn()
        job = _Job(fn)
        with self._condition:
            if self._closed:
                raise ServiceUnavailable("this worker is shutting down; retry")
            if len(self._queue) >= self.max_queued:
                raise ServiceUnavailable(
                    f"this worker is busy with {self.work} ({self.running} running, {len(self._queue)} waiting); {self.advice}"
                )
            self._queue.append(job)
            self._condition.notify()
        while not job.done.wait(_POLL_SECONDS if not job.started else None):
            if call is not None:
                self._check_queued(job, call)
        if job.error is not None:
            raise job.error
        return job.result

    def _check_queued(self, job: _Job, call: CallState) -> None:
        """While the job waits for a thread: give up (and never start it) once its caller cannot use it."""
        remaining = call.time_remaining()
        expired = remaining is not None and remaining <= 0
        gone = not call.is_active()
        if not (expired or gone):
            return
        with self._condition:
            if job.started:
                return  # its own checks stop it now; the caller waits for its end
            self._queue.remove(job)
        if expired or (remaining is not None and remaining <= DEADLINE_SLACK_SECONDS):
            raise DeadlineExpired(0, 0, waiting="for a thread of the bulk lane")
        raise CallCancelled("the client cancelled the call while it waited for the bulk lane")

    def close(self) -> None:
        """Stop the threads once the queued work is done (they are daemons: a worker's exit does not wait)."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()

    def _serve(self) -> None:
        self._local.on_lane = True
        lower_priority(self.niceness, idle=self.idle)
        while True:
            with self._condition:
                while not self._queue and not self._closed:
                    self._condition.wait()
                if not self._queue:
                    return
                job = self._queue.popleft()
                job.started = True
                self.running += 1
            try:
                job.result = job.context.run(job.fn)
            except BaseException as exc:  # handed to the caller, who raises it
                job.error = exc
            finally:
                with self._condition:
                    self.running -= 1
                job.done.set()


_warned = False


def lower_priority(niceness: int, *, idle: bool = False) -> bool:
    """Lower the calling thread's CPU priority for good (Linux: nice and policy are per thread); False where
    the system does not allow it (logged once)."""
    global _warned
    try:
        if idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread
        else:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), niceness)
        return True
    except (AttributeError, OSError) as exc:
        if not _warned:
            _warned = True
            _log.warning("bulk lane threads keep normal priority: %s", exc)
        return False
