"""A GIL-wait probe for every Python process started with this directory on PYTHONPATH and
``GIL_PROBE_DIR`` set (bench/service_hostile.py sets both for the server it starts; nothing of it ships).

A daemon thread sleeps 1 ms in a loop. Each time it wakes late, the lateness has two parts: time the
thread waited for a CPU (the scheduler's run-queue wait, from ``/proc/thread-self/schedstat``: other
processes on the machine, the load generators) and the rest, time it waited for the GIL that another
thread of the process held (the server's own doing). Each wake later than 1 ms is written as
``time gil_wait cpu_wait`` (seconds) to ``$GIL_PROBE_DIR/<pid>.txt``, with a line ``wakes N`` per second,
so a reader can cut the record into phases by time. Each pass of the cyclic garbage collector of 0.5 ms or
more (it holds the GIL throughout) goes to ``$GIL_PROBE_DIR/<pid>.gc.txt`` as ``time generation wall cpu``
(seconds; wall above cpu is time the collecting thread spent off its core).

    PYTHONPATH=bench/gil_probe GIL_PROBE_DIR=/tmp/probe tokend serve ...
"""

import os
import threading
import time


def _probe(directory: str) -> None:
    path = os.path.join(directory, f"{os.getpid()}.txt")
    schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def queued() -> int:
        return int(os.pread(schedstat, 128, 0).split()[1])

    with open(path, "a", buffering=1 << 16) as out:
        second, wakes = int(time.time()), 0
        while True:
            before_queue, before = queued(), time.perf_counter()
            time.sleep(0.001)
            late = time.perf_counter() - before - 0.001
            cpu = (queued() - before_queue) / 1e9
            wakes += 1
            now = time.time()
            if late > 0.001:
                out.write(f"{now:.4f} {max(0.0, late - cpu):.5f} {cpu:.5f}\n")
            if int(now) != second:
                out.write(f"wakes {second} {wakes}\n")
                out.flush()
                second, wakes = int(now), 0


def _time_collections(directory: str) -> None:
    import gc

    out = open(os.path.join(directory, f"{os.getpid()}.gc.txt"), "a", buffering=1)
    began = [0.0, 0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            began[:] = time.perf_counter(), time.thread_time()
            return
        wall = time.perf_counter() - began[0]
        if wall >= 0.0005:
            out.write(f"{time.time():.4f} {info['generation']} {wall:.5f} {time.thread_time() - began[1]:.5f}\n")

    gc.callbacks.append(callback)


if os.environ.get("GIL_PROBE_DIR"):
    _time_collections(os.environ["GIL_PROBE_DIR"])
    threading.Thread(target=_probe, args=(os.environ["GIL_PROBE_DIR"],), name="gil-probe", daemon=True).start()
