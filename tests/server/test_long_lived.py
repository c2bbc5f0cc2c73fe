"""A worker's start-up objects are frozen out of the cyclic collector (tokend.server.long_lived): a full
collection no longer walks the ~47,000 objects of its imports with the GIL held; what comes later, models
included, stays collectable."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)


def test_the_imports_leave_the_collector_and_later_objects_stay_collectable():
    done = _run(
        """
        import gc, weakref
        import tokend.server.worker
        from tokend.server.long_lived import freeze_long_lived_objects

        class Node:
            pass

        def cycle():
            a, b = Node(), Node()
            a.other, b.other = b, a
            return weakref.ref(a)

        startup_garbage = cycle()  # garbage made before: collected, not frozen
        tracked = len(gc.get_objects())
        frozen = freeze_long_lived_objects()
        assert startup_garbage() is None
        assert frozen > 10_000 and frozen >= 0.9 * tracked, (frozen, tracked)
        assert len(gc.get_objects()) < 100, len(gc.get_objects())
        later = cycle()
        gc.collect()
        assert later() is None  # a cycle made after the freeze is still found
        print("ok")
        """
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_worker_freezes_its_start_up_objects(shared_server):
    (serving,) = shared_server.events("worker_serving")
    assert serving["gc_frozen_objects"] > 10_000
