"""Dispatch: `python -m bench engine [--quick]`, `python -m bench family --demo llama3`, ...

Add a benchmark by adding its module to BENCHMARKS."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "engine": "bench.engine",
    "family": "bench.family",
    "families": "bench.families",
    "family-worst": "bench.family_worst",
    "split": "bench.split",
    "sentencepiece": "bench.sentencepiece",
    "sentencepiece-deadline": "bench.sentencepiece_deadline",
    "service": "bench.service",
    "footprint": "bench.footprint",
    "chat": "bench.chat",
    "chat-spans": "bench.chat_spans",
    "budgets": "bench.budgets",
    "budget-service": "bench.budget_service",
    "ab": "bench.ab",
    "render-turns": "bench.render_turns",
    "unread-answers": "bench.unread_answers",
    "stream-room": "bench.stream_room",
    "chain-percall": "bench.chain_percall",
    "playground-flood": "bench.playground_flood",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        sys.stderr.write(f"usage: python -m bench {{{'|'.join(BENCHMARKS)}}} [options]\n")
        return 2
    return importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
