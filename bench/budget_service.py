"""Token budgets through the service: ChunkStream on a big document, DecodeStream per id, offsets over gRPC,
and the client's decoders — beside the same work in process, same run.

    python -m bench budget-service            # writes docs/bench-budget-service.md
    python -m bench budget-service --quick    # a 2 MB document, fewer ids

Method: one `tokend serve` worker (requests up to 12 MB, answers up to 64 MB) on this machine, the client in
this process (so client and server share the 2 cores, as every service benchmark here). Wall-clock seconds,
best of 3. Documents: bench.budgets' distinct English text (tests/corpus.py).
- ChunkStream: one document in 512-token chunks (and 64-token chunks: ~8x the messages), from sending the
  request to the last chunk read, through `RemoteEncoding.iter_chunks`; beside the unary Chunk RPC of the same
  document (`RemoteEncoding.chunk`) and the engine's `chunk` in this process (no network).
- DecodeStream: the ids of an English text fed one at a time, each `feed` waiting for its answer (what a
  serving loop does), through `RemoteEncoding.decoder(mode="stream")`; beside `mode="local"` (the token
  table, whose one-time fetch is timed on its own) and the engine's own decoder.
- Offsets: Encode of 64 x 4 KB texts with and without `offsets`.
Runs vary by +-30 % on this shared machine; compare ratios within one run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from bench.budgets import _document

import tokend

REPEATS = 3


def _best(operation) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        started = time.perf_counter()
        operation()
        best = min(best, time.perf_counter() - started)
    return best


def _chunk_lines(remote, local, text: str) -> list[str]:
    megabytes = len(text.encode()) / 1e6
    lines = [f"## ChunkStream: one {megabytes:.1f} MB English document", ""]
    lines += ["| max_tokens | chunks | ChunkStream s | MB/s | unary Chunk s | engine in process s | ChunkStream ÷ engine |",
              "|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for max_tokens in (512, 64):
        expected = local.chunk(text, max_tokens)
        streamed = list(remote.iter_chunks(text, max_tokens))
        assert [(c.start, c.end, c.ids) for c in streamed] == [(c.start, c.end, c.ids) for c in expected]
        stream = _best(lambda: sum(1 for _ in remote.iter_chunks(text, max_tokens)))
        unary = _best(lambda: remote.chunk(text, max_tokens))
        engine = _best(lambda: local.chunk(text, max_tokens))
        lines.append(f"| {max_tokens} | {len(expected):,} | **{stream:.2f}** | {megabytes / stream:.1f} | {unary:.2f} | "
                     f"{engine:.2f} | {stream / engine:.2f}× |")  # fmt: skip
        sys.stderr.write(lines[-1] + "\n")
    return lines


def _decode_lines(remote, local, ids: list[int]) -> list[str]:
    lines = [f"## DecodeStream: {len(ids):,} ids fed one at a time (µs per id)", ""]
    lines += ["| decoder | µs per id | ÷ engine |", "|---|---:|---:|"]
    expected = local.decode(ids)

    def per_id(make) -> float:
        def run():
            decoder = make()
            text = "".join(decoder.feed(token) for token in ids) + decoder.flush()
            assert text == expected
            getattr(decoder, "close", lambda: None)()

        return _best(run) / len(ids) * 1e6

    engine = per_id(local.decoder)
    fetch_started = time.perf_counter()
    remote.decoder(mode="local")  # the token table: fetched once per RemoteEncoding
    fetch = time.perf_counter() - fetch_started
    table = per_id(lambda: remote.decoder(mode="local"))
    stream = per_id(lambda: remote.decoder(mode="stream"))
    for label, value in (("engine `decoder()` in process", engine), ("client, `mode=\"local\"` (token table)", table),
                         ("client, `mode=\"stream\"` (DecodeStream round trip per id)", stream)):  # fmt: skip
        lines.append(f"| {label} | {value:.1f} | {value / engine:.1f}× |")
        sys.stderr.write(lines[-1] + "\n")
    lines += ["", f"The token table's one-time fetch for {remote.name} ({remote.max_token_value + 1:,} ids, batched "
              f"Decode): {fetch:.2f} s."]  # fmt: skip
    return lines


def _offsets_lines(remote, texts: list[str]) -> list[str]:
    megabytes = sum(len(text.encode()) for text in texts) / 1e6
    plain = _best(lambda: remote.encode_batch(texts))
    with_offsets = _best(lambda: [remote.encode_with_offsets(text) for text in texts])
    batched = remote._run  # one batched Encode with offsets, as the RPC is meant to be used
    from tokend_api.policy_message import to_message

    from tokend_client._budget_operations import PreparedTexts, offsets_operation

    operation = offsets_operation(remote._ref, to_message(frozenset(), "all"), remote._expect)
    prepared = PreparedTexts(texts)
    batch = _best(lambda: batched(operation, prepared.prepared(), batch_call=True))
    return [
        f"## Offsets over gRPC: {len(texts)} texts of 4 KB ({megabytes:.2f} MB)", "",
        "| call | s | MB/s |", "|---|---:|---:|",
        f"| `encode_batch` (Encode) | {plain:.3f} | {megabytes / plain:.1f} |",
        f"| one Encode with `offsets` for the batch | {batch:.3f} | {megabytes / batch:.1f} |",
        f"| `encode_with_offsets` per text ({len(texts)} Encode calls) | {with_offsets:.3f} | {megabytes / with_offsets:.1f} |",
    ]  # fmt: skip


def run(quick: bool) -> list[str]:
    from tests.support.server import TokendServer

    import tokend_client

    size = 2_000_000 if quick else 10_000_000
    document = _document("english", size)[:size]
    local = tokend.get_encoding("cl100k_base")
    server = TokendServer(
        "--max-request-bytes", str(12 << 20), "--max-message-bytes", str(64 << 20), workers=1, metrics=False,
        models=["cl100k_base"],
    ).start()  # fmt: skip
    try:
        with tokend_client.TokendClient(server.target, timeout=300, max_request_bytes=12 << 20,
                                        max_message_bytes=64 << 20) as client:  # fmt: skip
            remote = client.get_encoding("cl100k_base")
            lines = _chunk_lines(remote, local, document)
            ids = local.encode(document[: 20_000 if quick else 100_000])
            lines += [""] + _decode_lines(remote, local, ids)
            texts = [document[start : start + 4000] for start in range(0, 64 * 4000, 4000)]
            lines += [""] + _offsets_lines(remote, texts)
    finally:
        server.stop()
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench budget-service", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 2 MB document")
    parser.add_argument("--out", default="docs/bench-budget-service.md", help="markdown report path ('' = do not write)")
    args = parser.parse_args(argv)
    header = [
        "# Token budgets through the service",
        "",
        f"`python -m bench budget-service{' --quick' if args.quick else ''}` — "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python {platform.python_version()}, "
        f"{platform.machine()}. One server worker and the client on the same shared 2 cores; wall-clock seconds, "
        "best of 3; compare ratios within the run. Method: bench/budget_service.py.",
        "",
    ]
    report = "\n".join(header + run(args.quick)) + "\n"
    sys.stdout.write(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report, encoding="utf-8")
    return 0
