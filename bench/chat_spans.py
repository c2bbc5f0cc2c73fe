"""Per-message counts of long template chats: what `count_chat` costs with and without them, by chat length.

    python -m bench chat-spans              # prints a table
    python -m bench chat-spans --sizes 50,100,150,300,600

Method: agent chats on Qwen3's and Qwen2.5's published templates with 8 tools (a system prompt, then rounds of
user request, assistant tool call, tool answer, assistant reply), `count_chat(messages, tools)` with
per-message counts and with `per_message=False`, each the median of a few rounds of CPU time
(`time.thread_time`: the renders' own work on a shared machine) under a generous template time limit, so that
the cost shows instead of the limit. Below the prefix renders' bound (template_format: MAX_PREFIX_TICKS) the
per-message counts render every prefix (`spans_exact` as the template allows); past it they come from the
loops of the one render (`spans_exact` False).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TOOLS = [
    {"type": "function", "function": {"name": f"tool_{number}", "description": f"Does thing {number} with care",
                                      "parameters": {"type": "object", "required": ["city"],
                                                     "properties": {"city": {"type": "string", "description": "where"},
                                                                    "n": {"type": "integer"}}}}}
    for number in range(8)
]  # fmt: skip


def agent_chat(count: int) -> list[dict]:
    messages = [{"role": "system", "content": "You are an agent."}]
    step = 0
    while len(messages) < count:
        call = {"name": f"tool_{step % 8}", "arguments": {"city": "Paris", "n": step}}
        messages += [
            {"role": "user", "content": f"Please do step {step} for me."},
            {"role": "assistant", "content": f"Calling tool {step}.", "tool_calls": [{"id": f"c{step}", "type": "function", "function": call}]},
            {"role": "tool", "tool_call_id": f"c{step}", "content": f"result {step}: 18 C"},
            {"role": "assistant", "content": f"Step {step} done."},
        ]
        step += 1
    return messages[:count]


def _cpu_seconds(function, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.thread_time()
        function()
        samples.append(time.thread_time() - started)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chat-spans")
    parser.add_argument("--sizes", default="50,100,150,200,300,600")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from chat.hf_tokenizers import tokend_encoding
    from chat.templates import packaged_template
    from tokend.registry.chat import ChatEncoder, TemplateLimits, build_chat_format, chat_format_from_template

    limits = TemplateLimits(seconds=60.0)
    qwen3 = tokend_encoding("qwen3")
    print("| template | messages | per-message ms (CPU) | total only ms | spans_exact |")
    print("|---|---:|---:|---:|---|")
    for name in ("Qwen-Qwen3-0.6B.jinja", "Qwen-Qwen2.5-7B-Instruct.jinja"):
        spec = chat_format_from_template(packaged_template(name), eos_token="<|im_end|>")
        encoder = ChatEncoder(qwen3, build_chat_format(spec))
        for size in map(int, args.sizes.split(",")):
            messages = agent_chat(size)
            exact = encoder.count_chat(messages, TOOLS, limits=limits).spans_exact
            spans = _cpu_seconds(lambda: encoder.count_chat(messages, TOOLS, limits=limits), args.rounds)
            total = _cpu_seconds(lambda: encoder.count_chat(messages, TOOLS, limits=limits, per_message=False), args.rounds)
            print(f"| {name} | {size} | {spans * 1000:.1f} | {total * 1000:.1f} | {exact} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
