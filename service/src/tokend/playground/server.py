"""Running the playground: `PlaygroundServer` (a thread, for tests and embedding) and `serve_playground`
(blocking; what `tokend serve`'s supervisor runs in a child process, see `process.py`).

The playground answers from its own in-process service (``tokend.service`` over the same `Registry.open`
the gRPC workers use), so it needs no gRPC round trip and shows exactly what a worker would answer. With
`reload_interval > 0` it refreshes its models on the same schedule, with the same step, as the workers.

The transport is ``tokend.http_listener.HttpListener`` (a thread per connection, kept for the next one; a listen
backlog of 1,024,
at most ``max_connections`` connections — more get a JSON 503 —, quiet about clients that go away); the
routes are ``request_handler.py``'s.

Not handled: TLS and authentication (it is a development page; keep its port private or put a proxy in
front), more than one process (one threaded server is plenty for people typing).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from tokend.errors import TokendError
from tokend.http_listener import DEFAULT_MAX_CONNECTIONS, HttpListener
from tokend.service import WorkAdmission
from tokend.service.freed_memory import return_freed_memory
from tokend.settings import Settings

from .api import PlaygroundApi, PlaygroundLimits
from .large_bodies import large_body_places
from .request_handler import handler_for, overload_response

logger = logging.getLogger(__name__)

# The GIL switch interval of the playground's process (CPython's default: 5 ms; a gRPC worker's is the same 1 ms,
# server/worker.py). A chat template renders in pure Python and one render of the process always runs while
# renders wait for the turn (registry/chat/render_turns.py), so every thread that gives up the GIL for a system
# call (accept, a socket read, a write, a log line) waits up to one interval to get it back. A page's request
# makes a few such calls, each after the render: beside 40 clients sending spinning chats on new connections, a
# polite count on a kept connection took 6.0-6.5 ms (p50) and 43-46 ms (p99) with 5 ms, 3.8-4.8 and 25-30 ms with
# 1 ms (load 5-8; docs/decisions.md, "The playground under floods", issue 13).
GIL_SWITCH_SECONDS = 0.001


class PlaygroundServer:
    """The playground on `host:port` (0 = a free port), served from a background thread.

    >>> import urllib.request
    >>> from tokend.registry import Registry
    >>> with PlaygroundServer(Registry.open(), port=0) as server:
    ...     urllib.request.urlopen(server.url + "healthz").read()
    b'ok\\n'
    """

    def __init__(
        self, registry: Any, host: str = "127.0.0.1", port: int = 0, limits: PlaygroundLimits | None = None,
        *, max_connections: int = DEFAULT_MAX_CONNECTIONS, admission: WorkAdmission | None = None,
    ) -> None:
        self.api = PlaygroundApi(registry, limits, admission)
        self.large_bodies = large_body_places()  # large_bodies.py: eight large bodies parsed and answered at once
        self._httpd = HttpListener(
            (host, port), handler_for(self.api, self.large_bodies), max_connections=max_connections,
            overload_response=overload_response(),
        )
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in {"0.0.0.0", ""} else self.host
        return f"http://{host}:{self.port}/"

    def load_models(self, refs: Sequence[str] | None = None) -> list[str]:
        """Load `refs` (None: every model's latest version) now, as `tokend serve`'s workers do at start, so
        the page's first requests find them loaded instead of waiting on loads (a few at a time; more get
        503 "still loading"). Returns the references that failed to load, each logged; their requests get
        the error when they come."""
        models = self.api.service.models
        failed = []
        for ref in models.configured_refs(refs):
            try:
                models.load(ref, wait=None)
            except TokendError as error:
                logger.warning("playground: %s did not load at start: %s", ref, error)
                failed.append(ref)
        return failed

    def start(self) -> PlaygroundServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tokend-playground", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until `stop()` is called from another thread."""
        self._httpd.serve_forever()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> PlaygroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_playground(settings: Settings, ready: Any = None) -> None:
    """Serve the playground until SIGTERM/SIGINT; blocking. ``ready`` (an Event, optional) is set once it
    listens.

    Example (blocks until SIGTERM)::

        serve_playground(Settings.load(flags={"playground_port": 8080}))
    """
    from tokend.registry import Registry  # here, not at import: the page's modules stay importable alone

    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    registry = Registry.open(settings.registry)
    limits = PlaygroundLimits(
        max_batch_items=settings.max_batch_items, max_request_bytes=settings.max_request_bytes,
        max_response_bytes=settings.max_message_bytes,
    )  # fmt: skip
    server = PlaygroundServer(
        registry, host=settings.playground_host, port=settings.playground_port, limits=limits,
        admission=WorkAdmission(settings.max_work_bytes, on_idle=return_freed_memory),
    )  # fmt: skip
    stopping = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stopping.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    reloader = server.api.service.models.hot_reload(
        settings.reload_interval, None, unload_unused_after=settings.unload_unused_after,
        max_pinned_versions=settings.max_pinned_versions,
    )  # fmt: skip
    # Loaded in the background: the page answers at once (a request for a model still loading waits for it).
    threading.Thread(target=server.load_models, args=(settings.models,), name="tokend-playground-load", daemon=True).start()
    server.start()
    logger.info("token playground serving on http://%s:%d/", settings.playground_host, server.port)
    if ready is not None:
        ready.set()
    try:
        # A bounded wait, so SIGTERM is noticed promptly however the signal interrupts the wait.
        while not stopping.wait(1.0):
            pass
    finally:
        if reloader is not None:
            reloader.stop()
        server.stop()
        registry.close()
