"""Chat benchmark: what `count_chat` costs beside counting the rendered prompt text, per chat format.

    python -m bench chat            # writes docs/bench-chat.md
    python -m bench chat --quick    # fewer repetitions

Method: a 20-message chat (a system message, then user and assistant turns of 300-700 characters of
English from tests/corpus.py, different text in every turn). For each format, the baseline is
`encoding.count(text, allowed_special="all")` on the prompt the format renders (`encode_chat(...).text`): the
same tokens, counted as one string. The chat call is `count_chat(messages)` (message checks, rendering,
per-message counts), and for templates also `count_chat(..., per_message=False)` (one render instead of
one per prefix). Both run on a warm piece cache (the same text again), interleaved, and each number is the
median of several rounds of wall time (`perf_counter`) in this one process. The ratio chat/baseline is the
result; the target is at most 1.10 for the built-in formats.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _chat(turns: int = 20) -> list[dict]:
    from tests.corpus import corpus_texts

    text = " ".join(doc for doc in corpus_texts(limit_bytes=60_000, kinds=("english",)) if "<|" not in doc and "[INST" not in doc)
    words = text.split()
    messages = [{"role": "system", "content": "You are a careful assistant. Answer in plain English."}]
    position = 0
    for turn in range(turns - 1):
        size = 50 + (turn * 37) % 70  # 50-120 words, 300-700 characters
        messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": " ".join(words[position : position + size])})
        position += size
    return messages


def _encoders():
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (tiktoken and openai-harmony offline)
    import tiktoken

    import tokend
    from chat.hf_tokenizers import tokend_encoding
    from chat.templates import packaged_template
    from tokend.engine import O200K_PATTERN
    from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format, chat_format_from_template

    qwen3, llama3 = tokend_encoding("qwen3"), tokend_encoding("llama3")
    harmony_specials = {k: v for k, v in tiktoken.get_encoding("o200k_harmony")._special_tokens.items() if k != "<|endofprompt|>"}
    o200k_harmony = tokend.Encoding("o200k_harmony", pat_str=O200K_PATTERN,
                                    mergeable_ranks=dict(tokend.get_encoding("o200k_base").mergeable_ranks), special_tokens=harmony_specials)

    def bind(encoding, spec):
        return ChatEncoder(encoding, build_chat_format(spec))

    qwen_template = chat_format_from_template(packaged_template("Qwen-Qwen3-0.6B.jinja"), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    llama_template = chat_format_from_template(packaged_template("meta-llama-Llama-3.1-8B-Instruct.jinja"), bos_token="<|begin_of_text|>")
    return {
        "chatml (Qwen 3)": bind(qwen3, builtin_chat_format("chatml")),
        "llama3 (Llama 3)": bind(llama3, builtin_chat_format("llama3")),
        "harmony (o200k_harmony)": bind(o200k_harmony, builtin_chat_format("harmony")),
        "openai-chat (o200k_base)": bind(tokend.get_encoding("o200k_base"), builtin_chat_format("openai-chat")),
        "template: Qwen3 (Qwen 3)": bind(qwen3, qwen_template),
        "template: Llama 3.1 (Llama 3)": bind(llama3, llama_template),
    }


def _median_seconds(function, rounds: int, repeat: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            function()
        samples.append((time.perf_counter() - started) / repeat)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chat")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "bench-chat.md"))
    args = parser.parse_args(argv)
    rounds, repeat = (5, 20) if args.quick else (11, 50)
    messages = _chat()
    rows = []
    for name, encoder in _encoders().items():
        if encoder.chat_format.estimate:
            # No rendered text: the baseline is counting each value, which is what the rule does.
            values = [value for message in messages for value in (message["role"], message["content"])]
            baseline = lambda values=values, encoding=encoder.encoding: sum(map(encoding.count_ordinary, values))  # noqa: E731
        else:
            text = encoder.encode_chat(messages).text
            baseline = lambda text=text, encoding=encoder.encoding: encoding.count(text, allowed_special="all")  # noqa: E731
        chat = lambda encoder=encoder: encoder.count_chat(messages)  # noqa: E731
        total_only = lambda encoder=encoder: encoder.count_chat(messages, per_message=False)  # noqa: E731
        baseline(), chat(), total_only()  # warm the piece cache
        base_s, chat_s, total_s = [], [], []
        for _ in range(3):  # interleaved
            base_s.append(_median_seconds(baseline, rounds, repeat))
            chat_s.append(_median_seconds(chat, rounds, repeat))
            total_s.append(_median_seconds(total_only, rounds, repeat))
        base, with_spans, total = min(base_s), min(chat_s), min(total_s)
        tokens = encoder.count_chat(messages).total
        rows.append((name, tokens, base * 1e6, with_spans * 1e6, with_spans / base, total * 1e6, total / base))
        print(f"{name:32} {tokens:6} tokens  text {base*1e6:8.1f} us  count_chat {with_spans*1e6:8.1f} us "
              f"({with_spans/base:.2f}x)  total only {total*1e6:8.1f} us ({total/base:.2f}x)", flush=True)
    lines = [
        "# Chat benchmark: count_chat beside counting the prompt text",
        "",
        f"`python -m bench chat{' --quick' if args.quick else ''}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}; method in bench/chat.py. A 20-message chat of English "
        "(300-700 characters per turn); warm piece cache; medians of wall time in one process.",
        "",
        "| format (encoding) | tokens | count(text) µs | count_chat µs | ratio | count_chat(per_message=False) µs | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {n} | {t} | {b:.1f} | {c:.1f} | {r:.2f} | {o:.1f} | {q:.2f} |" for n, t, b, c, r, o, q in rows]
    lines += [
        "",
        "Built-in formats render in plain Python and count each segment with the engine, so they cost about what "
        "counting the text costs. Templates run Jinja2 once per message prefix to place message boundaries "
        "(`per_message=False` renders once).",
    ]
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
