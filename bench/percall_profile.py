"""Where a worker's CPU goes per call, from py-spy's folded stacks (``py-spy record --native --gil --threads
--format raw``), for ``python -m bench service percall --profile SIDE``.

Each sample is charged to one part: the part of the innermost frame that belongs to one (libc's and
libpython's frames are charged to the frame that called them; a frame of the engine called from the
servicer is the engine's, the servicer's own frames are the servicer's), so the parts add up to the samples
taken. Thread roots tell grpcio's polling thread (``_serve`` / ``_poll``) from the
handler threads (``concurrent/futures/thread.py``). Samples are not CPU time exactly (py-spy samples threads
it sees running, at 500 Hz), but their shares are what matters here.

    print(summarize(Path("B-1234.folded").read_text(), calls=15000))

Not handled: stacks of other profilers; samples whose frames name no known file are "other".
"""

from __future__ import annotations

from collections import Counter

__all__ = ["summarize", "PARTS"]

# (part, substrings of a frame), checked in order: the first part any frame of the sample matches, reading the
# stack from its innermost frame out, takes the sample.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("engine (count)", ("tokend/engine/", "_native", "_engine")),
    ("metrics (prometheus)", ("prometheus_client/",)),
    ("logging", ("logging/__init__", "tokend/logs.py")),
    ("proto parse / answer", ("text_request.py", "FromString", "SerializeToString", "google/protobuf", "_message.",
                              "upb_", "messages.py")),
    ("call record", ("call_record.py",)),
    ("service layer", ("tokend/service/",)),
    ("servicer", ("server/servicer.py",)),
    ("interceptors", ("_interceptor.py", "interceptor_chain.py", "in_flight.py", "deferred_parse.py",
                      "stream_slots.py", "idle_streams.py", "stream_pace.py", "availability.py")),
    ("grpc python (_server.py etc.)", ("grpc/_server.py", "grpc/_common.py", "grpc/__init__.py", "grpc/_utilities.py")),
    ("grpc cython / core", ("cygrpc", "grpc_core", "grpc_", "absl", "_cygrpc")),
    ("thread pool / queues", ("concurrent/futures", "threading.py", "queue.py")),
)


def _part(frames: list[str]) -> str:
    for frame in reversed(frames):
        if "libc.so" in frame or "libpython" in frame or frame.startswith("0x"):
            continue  # a native frame under Python's: charged to the Python frame that called it
        for part, needles in PARTS:
            if any(needle in frame for needle in needles):
                return part
    return "other"


def _thread(frames: list[str]) -> str:
    joined = ";".join(frames)
    if "concurrent/futures/thread.py" in joined:
        return "handler threads"
    if "_serve" in joined or "_poll" in joined or "server_main" in joined or "_cygrpc" in joined:
        return "grpc polling thread"
    if "MainThread" in joined or "<module>" in joined:
        return "main thread"
    return "other threads"


def summarize(folded: str, *, calls: int) -> str:
    """A table of samples by part and by thread kind, and the heaviest leaf frames."""
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    by_part_thread: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        part, thread = _part(frames), _thread(frames)
        parts[part] += count
        threads[thread] += count
        by_part_thread[part, thread] += count
        leaves[frames[-1]] += count
        total += count
    if not total:
        return "no samples"
    lines = [f"{total} samples over {calls} calls ({total / max(calls, 1):.2f} a call)", "",
             "| part | share | handler threads | polling thread | other |", "|---|---:|---:|---:|---:|"]  # fmt: skip
    for part, count in parts.most_common():
        handler = by_part_thread[part, "handler threads"]
        polling = by_part_thread[part, "grpc polling thread"]
        lines.append(f"| {part} | {count / total:.1%} | {handler / total:.1%} | {polling / total:.1%} | "
                     f"{(count - handler - polling) / total:.1%} |")  # fmt: skip
    lines += ["", "| thread kind | share |", "|---|---:|"]
    lines += [f"| {thread} | {count / total:.1%} |" for thread, count in threads.most_common()]
    lines += ["", "heaviest leaf frames:"]
    lines += [f"  {count / total:6.1%}  {leaf[:160]}" for leaf, count in leaves.most_common(25)]
    return "\n".join(lines)
