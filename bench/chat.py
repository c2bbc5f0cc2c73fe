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


def _cold(encoding):
    """The same encoding without a piece cache: every count pays the full merge, as for text never seen."""
    import tokend

    return tokend.Encoding(encoding.name, pat_str=encoding.pattern, mergeable_ranks=encoding.mergeable_ranks,
                           special_tokens=encoding.special_tokens, piece_cache_capacity=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chat")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "bench-chat.md"))
    args = parser.parse_args(argv)
    from tokend.registry.chat import ChatEncoder, TemplateLimits

    rounds, repeat = (5, 10) if args.quick else (9, 20)
    limits = TemplateLimits(seconds=30.0)  # a shared machine must not turn a slow round into an error
    messages = _chat()
    rows = []
    for name, warm_encoder in _encoders().items():
        for cache in ("warm", "off"):
            encoder = warm_encoder if cache == "warm" else ChatEncoder(_cold(warm_encoder.encoding), warm_encoder.chat_format)
            encoding = encoder.encoding
            contents = [message["content"] for message in messages]
            text_of_chat = lambda: sum(map(encoding.count_ordinary, contents))  # noqa: E731
            if encoder.chat_format.estimate:
                prompt = None
                prompt_text = text_of_chat
            else:
                prompt = encoder.encode_chat(messages, limits=limits).text
                prompt_text = lambda: encoding.count(prompt, allowed_special="all")  # noqa: E731
            chat = lambda: encoder.count_chat(messages, limits=limits)  # noqa: E731
            total_only = lambda: encoder.count_chat(messages, limits=limits, per_message=False)  # noqa: E731
            text_of_chat(), prompt_text(), chat(), total_only()  # warm up (and the piece cache, when there is one)
            samples: dict[str, list[float]] = {"contents": [], "prompt": [], "chat": [], "total": []}
            for _ in range(3):  # interleaved
                for key, function in (("contents", text_of_chat), ("prompt", prompt_text), ("chat", chat), ("total", total_only)):
                    samples[key].append(_median_seconds(function, rounds, repeat))
            best = {key: min(values) * 1e6 for key, values in samples.items()}
            tokens = encoder.count_chat(messages, limits=limits).total
            rows.append((name, cache, tokens, best))
            print(f"{name:30} cache {cache:4} {tokens:5} tok  contents {best['contents']:8.0f} us  prompt {best['prompt']:8.0f} us  "
                  f"count_chat {best['chat']:8.0f} us ({best['chat'] / best['contents']:.2f}x)  "
                  f"total-only {best['total']:8.0f} us ({best['total'] / best['contents']:.2f}x)", flush=True)
    lines = [
        "# Chat benchmark: count_chat beside counting the chat's text",
        "",
        f"`python -m bench chat{' --quick' if args.quick else ''}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, a shared 2-core machine; method in bench/chat.py.",
        "A 20-message chat of English (300-700 characters per turn). *contents*: counting the messages' text "
        "(`count_ordinary` of each content); *prompt*: counting the rendered prompt as one string "
        "(`count(text, allowed_special='all')`); *count_chat*: with per-message counts; *total only*: "
        "`per_message=False`. Ratios are against *contents*. Cache *warm*: the same chat again (the piece cache "
        "answers almost every piece); *off*: an encoding without piece cache (every piece merged, as for new text).",
        "",
        "| format (encoding) | cache | tokens | contents µs | prompt µs | count_chat µs | ratio | total only µs | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, cache, tokens, best in rows:
        lines.append(
            f"| {name} | {cache} | {tokens} | {best['contents']:.0f} | {best['prompt']:.0f} | {best['chat']:.0f} | "
            f"{best['chat'] / best['contents']:.2f} | {best['total']:.0f} | {best['total'] / best['contents']:.2f} |"
        )
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
