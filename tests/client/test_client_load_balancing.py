"""Spreading calls: over the replicas behind one round_robin target, and over the workers of one server.

Two servers behind one target — tested two ways:
- `dns:///`-style, honestly: a DNS name that resolves to two addresses, as a Kubernetes headless Service
  does. The machine's resolver cannot be changed by a test (/etc/hosts maps `localhost` to 127.0.0.1
  only), so the test runs its own DNS server on a loopback UDP port (`client_dns_responder.py`) and names it in
  the target's authority: `dns://127.0.0.1:<dns port>/tokend.test:<port>`, which gRPC's c-ares resolver
  honours. `tokend.test` resolves to 127.0.0.1 and 127.0.0.2, two servers listening on the SAME port
  number — exactly the shape of pods behind a headless Service.
- a static address list, `ipv4:127.0.0.1:P1,127.0.0.1:P2`.
In both, both servers answer calls, and after one is SIGKILLed mid-traffic every call still succeeds.

Workers of one server: they share a port (SO_REUSEPORT), the kernel assigns each *connection* to a
worker at random, so a client with 16 connections reaches both workers of a 2-worker server except with
probability 2**-15.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import socket
import threading
import time

import pytest
import tiktoken
from client_dns_responder import DnsResponder
from support.server import TokendServer

import tokend_client

TEXT = "The quick brown fox jumps over the lazy dog. " * 40


def _port_free_on(*hosts: str) -> int:
    """A port number free on every host address given (two servers will share the number)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port = probe.getsockname()[1]
            try:
                for host in hosts[1:]:
                    with socket.socket() as other:
                        other.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def _server_on(host: str, port: int) -> TokendServer:
    # The helper picks 127.0.0.1 and a port itself; flags given later win, and the wait for SERVING uses
    # `target`, so point that at the address we chose.
    server = TokendServer("--host", host, "--port", str(port), models=["cl100k_base"], metrics=False)
    server.host, server.port, server.target = host, port, f"{host}:{port}"
    return server


@contextlib.contextmanager
def _two_servers(kind: str):
    """Two 1-worker servers and the single target that names both."""
    if kind == "dns":
        port = _port_free_on("127.0.0.1", "127.0.0.2")
        servers = [_server_on("127.0.0.1", port), _server_on("127.0.0.2", port)]
    else:
        servers = [TokendServer(models=["cl100k_base"], metrics=False) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        for server in servers:
            server.start()
            stack.callback(server.stop, signal.SIGKILL)
        if kind == "dns":
            dns = stack.enter_context(DnsResponder({"tokend.test": ["127.0.0.1", "127.0.0.2"]}))
            yield servers, f"dns://127.0.0.1:{dns.port}/tokend.test:{port}", dns
        else:
            yield servers, "ipv4:" + ",".join(server.target for server in servers), None


def _pids(server: TokendServer) -> set[str]:
    return {str(pid) for pid in server.worker_pids()}


@pytest.mark.parametrize("kind", ["dns", "ipv4-list"])
def test_round_robin_reaches_both_servers_and_survives_one_dying(kind):
    expected = tiktoken.get_encoding("cl100k_base").encode(TEXT)
    with _two_servers(kind) as (servers, target, dns):
        first, second = servers
        with tokend_client.TokendClient(target, connections=2, timeout=20) as client:
            enc = client.get_encoding("cl100k_base")

            def both_answered() -> bool:
                answered = set(client.worker_calls())
                return bool(_pids(first) & answered and _pids(second) & answered)

            # round_robin sends only over connections already up: while the second one is still connecting
            # (under load, longer than 20 quick calls take), every call goes to the first server.
            deadline = time.monotonic() + 10
            for call in itertools.count():
                assert enc.encode(TEXT) == expected
                if call >= 19 and (both_answered() or time.monotonic() > deadline):
                    break
            assert both_answered(), (client.worker_calls(), target)
            if dns is not None:
                assert ("tokend.test", 1) in dns.queries  # the name really went through DNS

            # Four threads keep calls in flight; one server is killed in the middle.
            failures: list[BaseException] = []
            done = [0]
            lock = threading.Lock()
            stop = threading.Event()

            def traffic():
                while not stop.is_set():
                    try:
                        result = enc.encode(TEXT)
                        ok = result == expected
                    except BaseException as error:  # noqa: BLE001 — every failure is a test failure
                        failures.append(error)
                        return
                    with lock:
                        done[0] += 1
                    if not ok:
                        failures.append(AssertionError("wrong ids"))

            threads = [threading.Thread(target=traffic) for _ in range(4)]
            for thread in threads:
                thread.start()
            try:
                _wait_for(lambda: done[0] >= 40 or failures)
                first.stop(signal.SIGKILL)
                killed_at = done[0]
                _wait_for(lambda: done[0] >= killed_at + 150 or failures)
            finally:
                stop.set()
                for thread in threads:
                    thread.join(30)
            assert not failures, failures[:3]
            assert done[0] >= killed_at + 150
            before = client.worker_calls()
            assert enc.count(TEXT) == len(expected)
            after = client.worker_calls()
            grew = {pid for pid in after if after[pid] != before.get(pid)}
            assert grew <= _pids(second)  # only the survivor answers now


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_concurrent_calls_reach_every_worker_of_one_server(server):
    workers = _pids(server)
    assert len(workers) == 2
    with tokend_client.TokendClient(server.target, connections=16) as client:
        enc = client.get_encoding("cl100k_base")
        threads = [threading.Thread(target=lambda: [enc.count(TEXT) for _ in range(8)]) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        answered = client.worker_calls()
    assert set(answered) == workers, answered
    assert sum(answered.values()) == 1 + 64  # GetModel + every count


def test_one_large_batch_is_spread_over_the_workers(server):
    # A batch big enough to split for parallelism goes out as several concurrent requests.
    texts = [f"{i} {TEXT}" for i in range(800)]  # ~1.5 MB: about 22 requests of 64 KiB over 16 connections
    with tokend_client.TokendClient(server.target, connections=16) as client:
        enc = client.get_encoding("cl100k_base")
        assert enc.count_batch(texts) == [len(ids) for ids in tiktoken.get_encoding("cl100k_base").encode_batch(texts)]
        answered = client.worker_calls()
    assert sum(answered.values()) >= 1 + 16  # GetModel + at least one request per connection
    assert set(answered) == _pids(server), answered


def test_async_client_survives_one_of_two_servers_dying(async_runner):
    expected = tiktoken.get_encoding("cl100k_base").encode(TEXT)
    with _two_servers("ipv4-list") as (servers, target, _):
        first, second = servers
        done = [0]
        stop = threading.Event()

        async def traffic(enc, failures):
            while not stop.is_set():
                try:
                    ok = await enc.encode(TEXT) == expected
                except Exception as error:  # noqa: BLE001 — every failure is a test failure
                    failures.append(error)
                    return
                done[0] += 1
                if not ok:
                    failures.append(AssertionError("wrong ids"))

        async def scenario():
            failures: list[BaseException] = []
            async with tokend_client.AsyncTokendClient(target, connections=2, timeout=20) as client:
                enc = await client.get_encoding("cl100k_base")
                await asyncio.gather(*(traffic(enc, failures) for _ in range(4)))
                return failures, client.worker_calls()

        running = asyncio.run_coroutine_threadsafe(scenario(), async_runner.loop)
        try:
            _wait_for(lambda: done[0] >= 40 or running.done())
            first.stop(signal.SIGKILL)
            killed_at = done[0]
            _wait_for(lambda: done[0] >= killed_at + 150 or running.done())
        finally:
            stop.set()
        failures, answered = running.result(60)
        assert not failures, failures[:3]
        assert done[0] >= killed_at + 150
        assert _pids(first) & set(answered) and _pids(second) & set(answered), answered
