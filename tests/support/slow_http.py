"""A static HTTP server on 127.0.0.1 that serves a registry directory, with chosen files trickling out slowly.

    from support.slow_http import TricklingServer

    with TricklingServer(registry_dir, byte_interval=0.2) as server:   # server.url = "http://127.0.0.1:PORT/"
        server.slow("cl100k_base/2/ranks.tiktoken.gz")   # from now on: headers at once, then 1 byte / 0.2 s
        ...
        server.release()                                  # slow files (and trickles under way) go at full speed
        server.gets("index.json")                         # how many GETs of a file began (catalog reads)
        server.fault("index.json", "error")               # from now on: 500 ("hang": no answer until release();
                                                          # "garbage": 200 and bytes that parse as nothing)

The trickle is what a stalled mirror or an overloaded link looks like to a client: a valid response whose
body never seems to end, each read returning a byte well within any per-read timeout. A faulty file is a
registry failing in another way: an error status, a request never answered, a file that is not what it should
be. Every other file is served at once, as python's http.server does. Connections are handled in daemon threads.
"""

from __future__ import annotations

import collections
import functools
import http.server
import threading
from pathlib import Path

__all__ = ["TricklingServer"]


class _Handler(http.server.SimpleHTTPRequestHandler):
    server: _HttpServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        relative = self.path.split("?", 1)[0].lstrip("/")
        with self.server.counting:
            self.server.gets[relative] += 1
        fault = None if self.server.released.is_set() else self.server.faults.get(relative)
        if fault == "error":
            self.send_error(500, "registry fault (test)")
            return
        if fault == "hang":
            self.server.released.wait()  # no status line, no headers: the client's read timeout is all it has
            fault = None
        if fault == "garbage":
            data = b"\x00{not what this file was" * 8
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if relative not in self.server.slow_paths or self.server.released.is_set():
            super().do_GET()
            return
        data = (Path(self.directory) / relative).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.server.trickles_started += 1
        try:
            sent = 0
            while sent < len(data):
                if self.server.released.wait(self.server.byte_interval):
                    self.wfile.write(data[sent:])
                    break
                self.wfile.write(data[sent : sent + 1])
                self.wfile.flush()
                sent += 1
        except OSError:  # the client gave up (its deadline): nothing to clean up
            pass


class _HttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    slow_paths: set[str]
    faults: dict[str, str]
    byte_interval: float
    released: threading.Event
    trickles_started: int
    gets: collections.Counter[str]
    counting: threading.Lock


class TricklingServer:
    """python's http.server serving `directory` on a free 127.0.0.1 port, some files trickling."""

    def __init__(self, directory: Path, *, byte_interval: float = 0.2) -> None:
        handler = functools.partial(_Handler, directory=str(directory))
        self.httpd = _HttpServer(("127.0.0.1", 0), handler)
        self.httpd.slow_paths = set()
        self.httpd.faults = {}
        self.httpd.byte_interval = byte_interval
        self.httpd.released = threading.Event()
        self.httpd.trickles_started = 0
        self.httpd.gets = collections.Counter()
        self.httpd.counting = threading.Lock()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def slow(self, relative_path: str) -> None:
        """Trickle this file (a path relative to the directory, as in its URL) from now on."""
        self.httpd.slow_paths.add(relative_path)
        self.httpd.released.clear()

    def fault(self, relative_path: str, kind: str) -> None:
        """Answer this file with a fault from now on: "error" (500), "hang" (nothing at all until ``release``) or
        "garbage" (200 and bytes that are no registry file)."""
        assert kind in ("error", "hang", "garbage"), kind
        self.httpd.faults[relative_path] = kind
        self.httpd.released.clear()

    def release(self) -> None:
        """Serve every file at full speed from now on, including the rest of trickles under way, and no fault."""
        self.httpd.faults.clear()
        self.httpd.released.set()

    @property
    def trickles_started(self) -> int:
        """How many GETs of slow files began (each is one client load attempt)."""
        return self.httpd.trickles_started

    def gets(self, relative_path: str) -> int:
        """How many GETs of this file (a path relative to the directory) began so far (``index.json``: how many
        times a client read the catalog)."""
        with self.httpd.counting:
            return self.httpd.gets[relative_path]

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.release()
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(5)
        self.httpd.server_close()
