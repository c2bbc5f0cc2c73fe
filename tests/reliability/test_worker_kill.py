"""SIGKILL a worker under load: the supervisor replaces it and the clients' retries complete every request.

Four client threads (tokend_client.TokendClient, default retries) send checked encode / count /
decode calls without pause; after a warm-up, one worker is SIGKILLed while calls are in flight on
it. Calls on its connections fail with UNAVAILABLE; gRPC retries the ones the worker had not started
answering, and the client resends the ones it had (``lost_its_server``). The test then requires:
every call completed with tiktoken's answer (none failed), the supervisor logged the death and spawned
a replacement that became ready, and the replacement answers calls.
"""

from __future__ import annotations

import os
import signal
import time

from support.server import start_server

import tokend_client
from reliability.load import MODELS, GoldenTexts, LoadThreads

CLIENTS = 4
CALLS_PER_CLIENT = 700


def test_sigkill_worker_under_load_is_replaced_and_no_call_fails(golden: GoldenTexts) -> None:
    with start_server(workers=2, metrics=False) as server:
        clients = [tokend_client.TokendClient(server.target, timeout=30, connections=4) for _ in range(CLIENTS)]
        try:
            encodings = [{model: client.get_encoding(model) for model in MODELS} for client in clients]

            def work(thread: int, index: int) -> None:
                model = MODELS[index % 2]
                position = (index * 7 + thread * 31) % len(golden.texts)
                text, ids = golden.texts[position], golden.ids[model][position]
                encoding = encodings[thread][model]
                if index % 3 == 0:
                    assert encoding.encode(text) == ids
                elif index % 3 == 1:
                    assert encoding.count(text) == len(ids)
                else:
                    assert encoding.decode(ids) == text

            load = LoadThreads(work, threads=CLIENTS, requests_per_thread=CALLS_PER_CLIENT).start()
            load.wait_completed(CLIENTS * CALLS_PER_CLIENT // 5, timeout=120)
            victim, survivor = server.worker_pids()
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            load.join(timeout=240)

            assert load.failures == [], f"{len(load.failures)} calls failed: " + "\n".join(load.failures[:6])
            assert load.completed == CLIENTS * CALLS_PER_CLIENT
            # The victim was part of the load (so calls were in flight on it when it died).
            served_by = {worker for client in clients for worker in client.worker_calls()}
            assert str(victim) in served_by, f"the killed worker never answered; answers came from {served_by}"
            # The supervisor saw the death and replaced the worker (0.5 s backoff, then a fresh start).
            deadline = killed_at + 60
            while not server.replaced(victim):
                assert time.monotonic() < deadline, "the killed worker was not replaced within 60 s:\n" + server.stderr_text()[-3000:]
                time.sleep(0.1)
            died = [entry for entry in server.events("worker_died") if entry["worker_pid"] == victim]
            assert died and died[0]["exitcode"] == -signal.SIGKILL
            pids = server.worker_pids()
            assert survivor in pids and len(pids) == 2
            replacement = next(pid for pid in pids if pid != survivor)
            # The replacement answers: fresh clients until one lands on it (each has 8 new connections).
            answered_by: set[str] = set()
            for _ in range(10):
                with tokend_client.TokendClient(server.target, timeout=30) as fresh:
                    encoding = fresh.get_encoding("cl100k_base")
                    for position in range(16):
                        assert encoding.encode(golden.texts[position]) == golden.ids["cl100k_base"][position]
                    answered_by |= set(fresh.worker_calls())
                if str(replacement) in answered_by:
                    break
            assert str(replacement) in answered_by, f"replacement {replacement} never answered; answers came from {answered_by}"
            print(f"killed worker {victim} after {CLIENTS * CALLS_PER_CLIENT // 5} calls; replaced by {replacement}; "
                  f"{load.completed} calls all completed")  # fmt: skip
        finally:
            for client in clients:
                client.close()
