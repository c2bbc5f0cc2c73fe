"""Run the playground as a real subprocess (as `tokend serve`'s supervisor does) and find its port.

The process is started with port 0 and reports the port it bound in its log line
"token playground serving on http://HOST:PORT/"; we read stderr until that line appears.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_SERVING = re.compile(r"token playground serving on http://[^:]+:(\d+)/")


@dataclass
class PlaygroundProcess:
    process: subprocess.Popen[str]
    url: str
    log: list[str] = field(default_factory=list)

    def terminate(self, timeout: float = 15.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextmanager
def running_playground(argv: list[str], *, startup_timeout: float = 60.0) -> Iterator[PlaygroundProcess]:
    """`argv` after the Python interpreter, e.g. ["-m", "tokend.playground", "--port", "0"]."""
    process = subprocess.Popen(
        [sys.executable, *argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    log: list[str] = []
    found = threading.Event()
    port: list[int] = []

    stderr = process.stderr  # a pipe: PIPE was asked for

    def read_log() -> None:
        for line in stderr or ():  # keep draining so the child never blocks on a full pipe
            log.append(line)
            match = _SERVING.search(line)
            if match and not found.is_set():
                port.append(int(match.group(1)))
                found.set()
        found.set()  # the process ended: stop waiting

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        if not found.wait(startup_timeout) or not port:
            raise RuntimeError(f"the playground did not start; its log:\n{''.join(log)}")
        yield PlaygroundProcess(process, f"http://127.0.0.1:{port[0]}/", log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        reader.join(10)
