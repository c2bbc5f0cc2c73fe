"""One worker process: a gRPC server on the shared port, serving until told to drain.

Life of a worker (started by the supervisor in a fresh *spawned* interpreter, see tokend.supervisor):
1. JSON logging, signal handlers (SIGTERM = drain; SIGINT ignored, the supervisor decides).
2. The gRPC server starts at once, health NOT_SERVING: load balancers and probes get an answer, and
   Tokenizer calls get UNAVAILABLE ("models are still loading"). A replacement worker (others are
   serving) loads first and listens after, so it never takes connections it cannot answer.
3. The configured models are loaded; then health SERVING, ``tokend_ready`` 1, the supervisor is told.
4. A hot-reload thread (the registry's Poller) refreshes the registry every ``reload_interval`` seconds.
5. SIGTERM (also sent by the parent watch when the supervisor vanishes): health NOT_SERVING, new calls
   refused with UNAVAILABLE, running calls get ``grace_period`` seconds to finish, their answers a moment
   to reach the clients; then the process ends (exit 0) without gRPC's own shutdown, see ``_end_process``. The
   calls it ends under (handlers still running, answers unsent) have their log line and handled count written
   first, UNAVAILABLE: what their clients see as the connections close (running_calls.py, unsent_answers.py).

Exit codes: 0 drained; 3 could not bind the port; 4 could not open the registry or load the models
(the supervisor restarts the worker with backoff either way).

    run_worker(settings, ready=None)   # blocks until SIGTERM, then ends the process
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from tokend.logs import configure_logging, log_event
from tokend.server.acked_bytes import AckedBytes
from tokend.server.availability import Availability
from tokend.server.availability_interceptor import AvailabilityInterceptor
from tokend.server.batch_items import batch_prechecks
from tokend.server.chat_shape import chat_prechecks
from tokend.server.deferred_parse import DeferredParse
from tokend.server.error_interceptor import ErrorInterceptor
from tokend.server.file_limit import connection_cap, fit_file_limit
from tokend.server.grpc_server import add_services, bind, build_server, listener_count
from tokend.server.idle_streams import IdleStreams
from tokend.server.in_flight import InFlightCalls
from tokend.server.interceptor_chain import InterceptorChain
from tokend.server.logging_interceptor import LoggingInterceptor
from tokend.server.long_lived import freeze_long_lived_objects
from tokend.server.metrics import ServerMetrics, write_values_under_cached_pid
from tokend.server.metrics_interceptor import MetricsInterceptor
from tokend.server.servicer import TokenizerServicer
from tokend.server.stream_pace import StreamPace
from tokend.server.stream_slots import StreamSlots
from tokend.server.unsent_answers import SendDeadlines, UnsentAnswers
from tokend.server.wire_bound import largest_request_message
from tokend.server.worker_id_interceptor import WorkerIdInterceptor
from tokend.service.freed_memory import return_freed_memory
from tokend.service import BulkLane, Limits, ServedModels, TokenizerService, WorkAdmission
from tokend.settings import Settings

__all__ = ["run_worker", "EXIT_BIND_FAILED", "EXIT_MODELS_FAILED"]

EXIT_BIND_FAILED = 3
EXIT_MODELS_FAILED = 4

_log = logging.getLogger("tokend.server.worker")


GIL_SWITCH_SECONDS = 0.001


def run_worker(settings: Settings, ready: Any = None, index: int = 0, *, listen_early: bool = True) -> int:
    """Serve until SIGTERM; ``ready`` (a multiprocessing Event, optional) is set once SERVING. Once the
    gRPC server has started, this ends the process (``_end_process``): it is a worker process's whole body.

    ``listen_early``: start listening before the models are loaded (health NOT_SERVING meanwhile).
    The supervisor passes False when replacing a worker while others serve: a listener that is not
    ready would take its share of new connections (SO_REUSEPORT) only to answer UNAVAILABLE.
    """
    configure_logging(settings.log_level)
    # A thread waiting for the GIL asks its holder to let go after this long (CPython's default: 5 ms). The
    # long holds left in a worker are Python loops cut into slices (sums over millions of ids, listed
    # strings), each slice a switch point: a small call waits up to one interval per GIL turn behind them.
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    # gRPC holds the cap on each listener (``--host localhost``: two), so the descriptors must hold it on them all.
    listeners = listener_count(settings.host)
    files, most_files = fit_file_limit(settings.max_connections * listeners)
    connections = connection_cap(settings.max_connections, files, listeners)
    if connections < settings.max_connections:  # the cap the limit holds: a worker out of descriptors accepts nothing
        log_event(_log, "file_limit_low", level=logging.WARNING, open_files=files, hard_limit=most_files,
                  max_connections=connections, max_connections_asked=settings.max_connections, listeners=listeners,
                  advice=f"raise the hard RLIMIT_NOFILE to hold --max-connections on each of the {listeners} "
                  "listening address(es) (+256); until then the worker holds fewer connections on each (more are "
                  "refused at once) and keeps descriptors for its own files")  # fmt: skip
        settings = settings.model_copy(update={"max_connections": connections})
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    from grpc_health.v1 import health

    from tokend.registry import Registry

    pid = os.getpid()
    write_values_under_cached_pid()  # before the first metric value: no getpid() per write (metrics.py)
    metrics = ServerMetrics()
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    availability = Availability(health=health_servicer, ready_gauge=metrics.ready)

    try:
        registry = Registry.open(settings.registry)
    except Exception as exc:
        log_event(_log, "registry_open_failed", level=logging.ERROR, registry=settings.registry, error=f"{type(exc).__name__}: {exc}")
        return EXIT_MODELS_FAILED
    # An unloaded version's Encoding (~28 MiB for cl100k_base) is freed into glibc's arenas: give it back.
    served = ServedModels(registry, observer=metrics, on_unloaded=return_freed_memory)
    admission = WorkAdmission(
        settings.max_work_bytes, answer_room_bytes=settings.answer_room_bytes, on_idle=return_freed_memory
    )
    # Large items' engine work and Encode answers run on low-priority threads: small calls get the cores first.
    # So do the regex fallback's slow splits (a model whose split pattern backtracks), on lanes of their own.
    lane = regex_lane = None
    if settings.bulk_lane_bytes > 0:
        lane = BulkLane(idle=settings.bulk_lane_policy == "idle", min_bytes=settings.bulk_lane_bytes)
        # Two running and two waiting at most: each waiting caller holds a handler thread, and calls that
        # backtrack for their whole bound must not take every thread of the worker from the short calls.
        regex_lane = BulkLane(idle=settings.bulk_lane_policy == "idle", min_bytes=0, name="regex", max_queued=2,
                              work="requests whose split pattern backtracks (the regex fallback)", advice="retry shortly")
    service = TokenizerService(served, Limits.of(settings), admission, lane, regex_lane)
    servicer = TokenizerServicer(service)
    calls = InFlightCalls()
    # A connection whose peer acknowledges its bytes is reading, though none of its answers has ended yet.
    acked_bytes = AckedBytes(settings.host)  # its port once bound (_listen)
    send_deadlines = SendDeadlines(on_cancel=metrics.answers_cancelled.inc, acked_bytes=acked_bytes)
    # A stream's unread answers are charged the time others wanted room in the work gate (idle_streams.py).
    idle_streams = IdleStreams(settings.stream_idle_timeout, settings.stream_yield_after, admission.room_wanted_seconds)
    # A large request that has waited for room, or an answer that found none, ends a stream whose client left its
    # answers unread while room was wanted (its reservation comes back as its call ends).
    admission.room_maker = idle_streams.make_memory_room
    # ... and one that finds no room, or a large request kept out by answers, cancels answers left unread a second
    # by clients showing no reading, oldest first (their room comes back as their calls end).
    admission.unread_room_maker = send_deadlines.make_room
    metrics_records, log_records = MetricsInterceptor(metrics, served.piece_cache_stats), LoggingInterceptor()
    # Outermost first: the worker id goes on every response; metrics and logs see the final status
    # the error interceptor chose; answers are serialized inside its call record (unsent_answers: their memory is
    # held until sent, or the call cancelled); the availability gate, the stream bound and the idle timeout raise inside the
    # error interceptor (a new stream may end a silent one to take its slot); a stream's pace holds it back
    # before the idle timeout's wait begins (stream_pace); large messages are parsed innermost, after the gate
    # (deferred_parse).
    # One chain, composed once per method (interceptor_chain: grpcio would run each interceptor per call).
    server = build_server(
        settings,
        interceptors=[
            InterceptorChain(
                [
                    calls,
                    WorkerIdInterceptor(pid),
                    metrics_records,
                    log_records,
                    ErrorInterceptor(),
                    UnsentAnswers(admission, send_seconds=settings.answer_send_seconds, deadlines=send_deadlines),
                    AvailabilityInterceptor(availability, calls),
                    StreamSlots(make_room=idle_streams.make_room),
                    idle_streams,
                    StreamPace(settings.stream_message_rate),
                    DeferredParse(
                        largest_request_message(
                            max_request_bytes=settings.max_request_bytes, max_batch_items=settings.max_batch_items
                        ),
                        settings.max_request_bytes,
                        {**batch_prechecks(service), **chat_prechecks(service)},
                    ),
                ]
            )
        ],
    )
    add_services(server, tokenizer=servicer, health=health_servicer, reflection_enabled=settings.reflection, lane=lane)
    if listen_early:
        # Nobody is serving yet: listen at once so probes see NOT_SERVING rather than a refused connection.
        if not _listen(server, settings, index, acked_bytes):
            return EXIT_BIND_FAILED
    frozen = freeze_long_lived_objects()  # before the models: a reload's old versions stay collectable
    try:
        loaded, failed = served.load_configured(settings.models)
        if failed and not loaded:  # nothing to serve: every configured version failed
            raise next(iter(failed.values()))
    except Exception as exc:
        log_event(
            _log,
            "models_load_failed",
            level=logging.ERROR,
            models=list(settings.models) if settings.models else "all",
            error=f"{type(exc).__name__}: {exc}",
        )
        availability.draining()
        _end_process(EXIT_MODELS_FAILED)
    availability.serving()
    if not listen_early and not _listen(server, settings, index, acked_bytes):
        return EXIT_BIND_FAILED
    if ready is not None:
        ready.set()
    log_event(_log, "worker_serving", worker=index, models=[f"{m.name}@{m.version}" for m in loaded],
              unavailable=sorted(failed), gc_frozen_objects=frozen)
    for ref, exc in failed.items():
        log_event(_log, "model_unavailable", level=logging.ERROR, worker=index, model=ref,
                  error=f"{type(exc).__name__}: {exc}", serving_the_others=True)

    reloader = served.hot_reload(
        settings.reload_interval, settings.models, unload_unused_after=settings.unload_unused_after,
        max_pinned_versions=settings.max_pinned_versions,
    )  # fmt: skip
    while not stop.wait(1.0):  # a bounded wait: signal handlers run promptly in the main thread
        pass

    log_event(_log, "worker_draining", worker=index, grace_period=settings.grace_period)
    availability.draining()
    # After draining(), not before: a call left uncounted must already meet the refusal (or health's
    # NOT_SERVING); neither is waited for nor reported as cut.
    calls.stop_counting()
    # A stream waits for its client's next message for as long as the client likes (a generation: minutes), so
    # the drain cannot wait for it: each ends with UNAVAILABLE as soon as it would wait (idle_streams.py), its
    # messages received answered, and its client opens a new stream elsewhere. Before, open streams held
    # every drain for the whole grace period and were then cut with the process.
    streams = idle_streams.drain()
    if reloader is not None:
        reloader.stop()
    # New calls get UNAVAILABLE from `availability` from here on; running ones get the grace period.
    deadline = time.monotonic() + settings.grace_period
    finished = calls.wait_idle(settings.grace_period)
    # A returned handler's answer may still be on its way out: HTTP/2 flow control holds a large one
    # until the client reads it, and ending the process then resets the connection. Calling
    # server.stop(grace) first and trusting its event was not enough (its calls count as done once the
    # answer is queued: "GOAWAY ... Server shutdown" in 1 of ~20 runs of tests/reliability/test_sigterm.py),
    # so the transports stay up, serving nothing new, for a short flush period (--drain-flush).
    time.sleep(max(0.0, min(settings.drain_flush, deadline - time.monotonic())))
    # The calls still running and the answers still unread now are cut with the connections: their records are
    # written here, or never (the process ends under them). The running calls first: a handler that returns
    # meanwhile records nothing once its call is cut (running_calls.py), or, answered before that, is among the
    # unsent answers (unsent_answers.py: their records wait for the call's end, which never comes).
    metrics_records.write_cut()
    log_records.write_cut()
    unsent = send_deadlines.abandon()
    log_event(_log, "worker_stopped", worker=index, calls_finished=finished, calls_cut=calls.count,
              decode_streams_ended=streams.ended, chunk_streams_finishing=streams.finishing,
              answers_unsent=unsent)  # fmt: skip
    _end_process(0)
    return 0  # not reached


def _end_process(code: int) -> None:
    """End this worker process now, leaving its connections for the kernel to close.

    Why not ``server.stop(grace)``: gRPC core's shutdown cancels every call that reaches the transport
    after it began — calls already received but not yet handed to a handler thread, and calls the client
    sent before it read the GOAWAY — and the client sees CANCELLED, which it must not retry (measured:
    2-11 per drain with 12 callers on open connections; tests/reliability/test_sigterm.py). The same calls
    on a connection that simply closes fail with UNAVAILABLE ("Socket closed"), which clients retry, as
    they retry the UNAVAILABLE that a draining worker answers. Nothing is left to clean up by then: no
    handler runs (or the grace period is over), answers had their flush period, metric values live in
    files the supervisor marks dead, and the interpreter's own exit would run gRPC's shutdown again.
    """
    logging.shutdown()  # flush the log handlers; os._exit skips every exit handler
    sys.stderr.flush()
    os._exit(code)


def worker_main(settings: Settings, ready: Any, index: int, peers_ready: bool) -> int:
    """Entry point of the supervisor's worker role (tokend.supervisor.roles): listen early unless peers serve."""
    return run_worker(settings, ready, index, listen_early=not peers_ready)



def _listen(server: Any, settings: Settings, index: int, acked_bytes: AckedBytes) -> bool:
    try:
        port = bind(server, settings)
        error = "port in use or address not available"
    except RuntimeError as exc:  # newer grpcio raises instead of returning 0
        port, error = 0, str(exc)
    if port == 0:
        log_event(_log, "bind_failed", level=logging.ERROR, host=settings.host, port=settings.port, error=error)
        return False
    acked_bytes.port = port
    server.start()
    log_event(_log, "worker_started", worker=index, port=port, tls=settings.tls, reflection=settings.reflection)
    return True
