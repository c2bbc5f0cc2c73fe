"""The playground under a flood: a polite count's latency beside N hostile clients, and the playground's CPU.

    python -m bench playground-flood --mode spin --threads 40 --seconds 15 [--new-connections] [--polite-new]
    python -m bench playground-flood --tree /tmp/base --mode small --new-connections --polite-new   # A/B: another tree

A real `tokend serve --workers 2` (from ``--tree``'s sources through PYTHONPATH, its native modules built in
place) on a directory registry of tests/support/chat_models.py's models, its playground on loopback. First the
polite client alone (``--idle`` seconds), then beside ``--threads`` hostile clients:
- ``spin``: count_chat of the templated model's conversation that spins until its time limit (one render of
  the process runs while the others wait for the turn; past MAX_RENDER_CALLS, 503 "busy");
- ``small``: a valid count of two words; ``bad400``: a count with an unknown field; ``big413``: a POST whose
  Content-Length is over the limit (refused from its headers, the connection closed).
``--new-connections``: each hostile request on a connection of its own (else one kept connection a client);
``--polite-new``: the same for the polite client (a count every 50 ms). Prints one JSON line: the polite p50 /
p99 / max idle and under the flood (ms), the playground's CPU seconds, the hostile requests by status, and the
load average (the machine is shared: compare builds taking turns, and read the load).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
POLITE_TEXT = "A polite sentence of a few words."
_HOSTILE = {
    "spin": ("/api/v1/count_chat", {"model": "templated", "messages": [{"role": "user", "content": "spin"}]}),
    "small": ("/api/v1/count", {"model": "templated", "text": "hello world"}),
    "bad400": ("/api/v1/count", {"model": "templated", "txt": "hello world"}),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(connection: http.client.HTTPConnection, path: str, body: bytes) -> int:
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    reply = connection.getresponse()
    reply.read()
    if (reply.getheader("Connection") or "").lower() == "close":
        connection.close()
    return reply.status


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _registry(root: Path) -> Path:
    for path in (str(REPO / "tests"), str(REPO)):
        if path not in sys.path:
            sys.path.insert(0, path)
    from support.chat_models import build_chat_registry

    return build_chat_registry(root)


def _start(tree: Path, registry: Path, port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=f"{tree}/service/src:{tree}/api/src:{tree}")
    command = [sys.executable, "-c", "import sys; from tokend.cli.main import main; sys.exit(main())", "serve",
               "--workers", "2", "--registry", str(registry), "--port", str(_free_port()), "--metrics-port",
               str(_free_port()), "--playground-port", str(port), "--log-level", "warning"]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)


def _wait_ready(port: int, timeout: float = 120.0) -> None:
    chat = json.dumps({"model": "templated", "messages": [{"role": "user", "content": "hi"}]}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            if _post(connection, "/api/v1/count_chat", chat) == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("the playground did not come up")


def _polite(port: int, seconds: float, new_connections: bool) -> list[float]:
    body = json.dumps({"model": "templated", "text": POLITE_TEXT}).encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    latencies = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.perf_counter()
        status = _post(connection, "/api/v1/count", body)
        latencies.append((time.perf_counter() - began) * 1000)
        if status != 200:
            raise SystemExit(f"the polite count got {status}")
        if new_connections:
            connection.close()
        time.sleep(0.05)
    return latencies


def _hostile(port: int, mode: str, new_connections: bool, stop: threading.Event, statuses: Counter, lock: threading.Lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while not stop.is_set():
        try:
            if mode == "big413":
                connection.putrequest("POST", "/api/v1/count")
                connection.putheader("Content-Length", str(1 << 40))
                connection.endheaders()
                reply = connection.getresponse()
                reply.read()
                status: int | str = reply.status
                connection.close()
            else:
                path, body = _HOSTILE[mode]
                status = _post(connection, path, json.dumps(body).encode())
            if new_connections:
                connection.close()
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
            connection.close()
        with lock:
            statuses[status] += 1


def _quantiles(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)  # (p99 by rank: ~200 samples, no extrapolation past the largest)
    return statistics.median(ordered), ordered[round(0.99 * (len(ordered) - 1))], ordered[-1]


def run(args: argparse.Namespace) -> dict:
    tree = Path(args.tree).resolve()
    with tempfile.TemporaryDirectory(prefix="playground-flood-") as scratch:
        registry = _registry(Path(scratch) / "registry")
        port = _free_port()
        server = _start(tree, registry, port, Path(scratch) / "server.log")
        try:
            _wait_ready(port)
            found = re.search(r"pid=(\d+)", subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout)
            if found is None:
                raise SystemExit("no process listens on the playground's port (ss -ltnp)")
            pid = int(found.group(1))
            idle = _polite(port, args.idle, args.polite_new)
            stop, statuses, lock = threading.Event(), Counter(), threading.Lock()
            clients = [threading.Thread(target=_hostile, args=(port, args.mode, args.new_connections, stop, statuses, lock), daemon=True)
                       for _ in range(args.threads)]  # fmt: skip
            cpu_before, began = _cpu_seconds(pid), time.monotonic()
            for client in clients:
                client.start()
            time.sleep(1.0)
            flood = _polite(port, args.seconds, args.polite_new)
            cpu, wall = _cpu_seconds(pid) - cpu_before, time.monotonic() - began
            stop.set()
            for client in clients:
                client.join(10)
        finally:
            os.killpg(server.pid, 15)
            server.wait(60)
    idle_q, flood_q = _quantiles(idle), _quantiles(flood)
    return {
        "tree": str(tree), "mode": args.mode, "threads": args.threads, "hostile_new_connections": args.new_connections,
        "polite_new_connections": args.polite_new, "load": os.getloadavg()[0],
        "idle_p50_p99_max_ms": [round(value, 2) for value in idle_q], "flood_p50_p99_max_ms": [round(value, 2) for value in flood_q],
        "playground_cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "hostile_requests": sum(statuses.values()),
        "statuses": {str(status): count for status, count in statuses.items()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench playground-flood", description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=str(REPO), help="the source tree to serve (native modules built in place)")
    parser.add_argument("--mode", choices=("spin", "small", "bad400", "big413"), default="spin")
    parser.add_argument("--threads", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--new-connections", action="store_true", help="a connection a hostile request")
    parser.add_argument("--polite-new", action="store_true", help="a connection a polite request")
    print(json.dumps(run(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
