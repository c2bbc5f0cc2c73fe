"""Chat benchmark: what `count_chat` costs beside counting the chat's text, per chat format.

    python -m bench chat            # writes docs/bench-chat.md
    python -m bench chat --quick    # fewer repetitions

Method: 20-message chats (a system message, then user and assistant turns of English from tests/corpus.py,
different text in every turn), *long* (300-700 characters per turn) and *short* (40-160). For each format
the baseline, *contents*, is counting the text of the messages (`count_ordinary` of each content); *prompt*
is counting the rendered prompt as one string (`count(text, allowed_special="all")`). The chat calls are
`count_chat(messages)` on the loaded model (message checks, rendering, per-message counts), the same with
`per_message=False` (for templates one render instead of one per prefix), and *service*: the whole request
path of `TokenizerService.count_chat` (limits, conversation size, model resolution, deadline) around it,
beside the service's own text path: `TokenizerService.count` of the contents joined as one text, and of
one two-letter text (the cost of a call itself).
All run interleaved on a warm piece cache (the same text again) or with the cache *off* (every piece
merged, as for new text); each number is the best of three medians of several rounds of wall time
(`perf_counter`) in this one process. The ratios against *contents* are the result; the issue's target is
at most 1.10 for the built-in formats (and, over the service, against the service's text path). Rows beyond
the first formats: Qwen 3 with its published NFC normalizer (tokenizer.json read by tokend's importer), and
the mistral formats on mistral-common's shipped files (SentencePiece v1/v3/v7, Tekken).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


CHAT_SIZES = {"long": (50, 70), "short": (7, 20)}  # words per turn: base + (turn * 37) % spread


def _chat(turns: int = 20, size: str = "long") -> list[dict]:
    from tests.corpus import corpus_texts

    text = " ".join(doc for doc in corpus_texts(limit_bytes=60_000, kinds=("english",)) if "<|" not in doc and "[INST" not in doc)
    words = text.split()
    base, spread = CHAT_SIZES[size]
    messages = [{"role": "system", "content": "You are a careful assistant. Answer in plain English."}]
    position = 0
    for turn in range(turns - 1):
        count = base + (turn * 37) % spread  # long: 50-120 words (300-700 characters); short: 7-27 words
        messages.append({"role": "user" if turn % 2 == 0 else "assistant", "content": " ".join(words[position : position + count])})
        position += count
    return messages


class _OneModelRegistry:
    """Just enough of a Registry for the service to serve one loaded chat encoder as "bench@1"."""

    def __init__(self, encoder) -> None:
        from types import SimpleNamespace

        manifest = SimpleNamespace(payload_format="tiktoken_ranks", chat_format=None)
        self.loaded = SimpleNamespace(name="bench", version=1, ref="bench@1", manifest=manifest, manifest_sha256="-",
                                      encoding=encoder.encoding, chat=encoder, load_seconds=0.0)

    def resolve(self, ref):
        return self.loaded

    def load(self, ref, wait=None):
        return self.loaded

    def list_models(self):
        return []


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


def _more_encoders(registry_dir: Path):
    """Qwen 3 as published (NFC normalizer, tokenizer.json read by tokend's importer) and the mistral formats on
    mistral-common's shipped files (SentencePiece v1/v3/v7, Tekken), imported into a registry at
    `registry_dir` as tests/chat does. A generator: the registry stays open until it is closed."""
    from chat.hf_tokenizers import tokend_encoding_from_file
    from chat.mistral_files import imported_encodings
    from tokend.registry.chat import ChatEncoder, build_chat_format, builtin_chat_format

    files = {"tokenizer.model.v1": "v1", "mistral_instruct_tokenizer_240323.model.v3": "v3",
             "mistral_instruct_tokenizer_241114.model.v7": "v7", "tekken_240718.json": "v3"}  # fmt: skip
    for mistral in imported_encodings(registry_dir, tuple(files)):
        qwen3_nfc = tokend_encoding_from_file("qwen3-nfc")
        encoders = {"chatml (Qwen 3, NFC)": ChatEncoder(qwen3_nfc, build_chat_format(builtin_chat_format("chatml")))}
        for file_name, version in files.items():
            family = "Tekken" if file_name.startswith("tekken") else f"SentencePiece {file_name.rsplit('.', 1)[-1]}"
            format_ = build_chat_format(builtin_chat_format("mistral", version=version))
            encoders[f"mistral {version} ({family})"] = ChatEncoder(mistral[file_name], format_)
        yield encoders


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
    from tokend.engine.sentencepiece.encoding import SentencePieceEncoding

    if isinstance(encoding, SentencePieceEncoding):
        return SentencePieceEncoding(encoding.name, model=encoding._model, piece_cache_capacity=0)
    if encoding.normalizer is not None or encoding.added_tokens:  # a tokenizer.json's model, as it is
        return tokend.Encoding.from_model(encoding._model, piece_cache_capacity=0)
    return tokend.Encoding(encoding.name, pat_str=encoding.pattern, mergeable_ranks=encoding.mergeable_ranks,
                           special_tokens=encoding.special_tokens, piece_cache_capacity=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chat")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(ROOT / "docs" / "bench-chat.md"))
    parser.add_argument("--only", default="", help="comma-separated parts of format names: only those rows (for a look while working)")
    args = parser.parse_args(argv)
    from tokend.registry.chat import ChatEncoder, TemplateLimits
    from tokend.service import ChatConversation, Limits, ServedModels, TokenizerService
    from tokend.service.special_policy import ORDINARY_POLICY

    rounds, repeat = (5, 10) if args.quick else (9, 20)
    limits = TemplateLimits(seconds=30.0)  # a shared machine must not turn a slow round into an error
    rows = []
    scratch = tempfile.TemporaryDirectory(prefix="bench-chat-")
    more = _more_encoders(Path(scratch.name) / "models")
    encoders = {**_encoders(), **next(more)}
    if args.only:
        encoders = {name: encoder for name, encoder in encoders.items() if any(part in name for part in args.only.split(","))}
    for size in CHAT_SIZES:
        messages = _chat(size=size)
        for name, warm_encoder in encoders.items():
            for cache in ("warm", "off"):
                encoder = warm_encoder if cache == "warm" else ChatEncoder(_cold(warm_encoder.encoding), warm_encoder.chat_format)
                encoding = encoder.encoding
                service = TokenizerService(ServedModels(_OneModelRegistry(encoder)), Limits())
                conversation = [ChatConversation(messages)]
                contents = [message["content"] for message in messages]
                text_of_chat = lambda: sum(map(encoding.count_ordinary, contents))  # noqa: E731
                if encoder.chat_format.estimate:
                    prompt_text = text_of_chat
                else:
                    prompt = encoder.encode_chat(messages, limits=limits).text
                    prompt_text = lambda: encoding.count(prompt, allowed_special="all")  # noqa: E731
                chat = lambda: encoder.count_chat(messages, limits=limits)  # noqa: E731
                total_only = lambda: encoder.count_chat(messages, limits=limits, per_message=False)  # noqa: E731
                served = lambda: service.count_chat("bench", conversation)  # noqa: E731
                joined = ["\n".join(contents)]  # the chat's text as one Count item: the service's text path
                served_text = lambda: service.count("bench", joined, special=ORDINARY_POLICY)  # noqa: E731
                served_call = lambda: service.count("bench", ["Hi"], special=ORDINARY_POLICY)  # noqa: E731  (the call's own cost)
                functions = {"contents": text_of_chat, "prompt": prompt_text, "chat": chat, "total": total_only,
                             "service": served, "service_text": served_text, "service_call": served_call}  # fmt: skip
                for function in functions.values():
                    function()  # warm up (and the piece cache, when there is one)
                samples: dict[str, list[float]] = {key: [] for key in functions}
                for _ in range(3):  # interleaved
                    for key, function in functions.items():
                        samples[key].append(_median_seconds(function, rounds, repeat))
                best = {key: min(values) * 1e6 for key, values in samples.items()}
                tokens = encoder.count_chat(messages, limits=limits).total
                rows.append((size, name, cache, tokens, best))
                print(f"{size:5} {name:30} cache {cache:4} {tokens:5} tok  contents {best['contents']:8.0f} us  "
                      f"prompt {best['prompt']:8.0f} us  count_chat {best['chat']:8.0f} us ({best['chat'] / best['contents']:.2f}x)  "
                      f"total-only {best['total'] / best['contents']:.2f}x  service {best['service'] / best['contents']:.2f}x  "
                      f"service/service text {best['service'] / best['service_text']:.2f}x  "
                      f"service/(contents + call) {best['service'] / (best['contents'] + best['service_call']):.2f}x", flush=True)
    lines = [
        "# Chat benchmark: count_chat beside counting the chat's text",
        "",
        f"`python -m bench chat{' --quick' if args.quick else ''}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, a shared 2-core machine; method in bench/chat.py.",
        "20-message chats of English: *long* turns of 300-700 characters, *short* ones of 40-160. *contents*: "
        "counting the messages' text (`count_ordinary` of each content); *prompt*: counting the rendered prompt "
        "as one string (`count(text, allowed_special='all')`); *count_chat*: on the loaded model, with per-message "
        "counts; *total only*: `per_message=False`; *service*: `TokenizerService.count_chat` (the request path of "
        "every front-end, without its wire). Ratios are against *contents*. Cache *warm*: the same chat again "
        "(the piece cache answers almost every piece); *off*: an encoding without piece cache (every piece "
        "merged, as for new text). *service text*: `TokenizerService.count` of the contents joined by newlines "
        "as one item, special-token text as ordinary text as in the chat's content (the same request path for "
        "text: limits, model resolution, policy, admission, batch loop; the engine's batch call, whose workers "
        "have their own piece caches), and *service* against it; *call*: `TokenizerService.count` of one "
        "two-letter text, the request path's own cost, and *service* against *contents* + *call*.",
        "",
        "| chat | format (encoding) | cache | tokens | contents µs | prompt µs | count_chat µs | ratio | total only ratio | service µs | ratio "
        "| service text µs | service / service text | call µs | service / (contents + call) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size, name, cache, tokens, best in rows:
        lines.append(
            f"| {size} | {name} | {cache} | {tokens} | {best['contents']:.0f} | {best['prompt']:.0f} | {best['chat']:.0f} | "
            f"{best['chat'] / best['contents']:.2f} | {best['total'] / best['contents']:.2f} | {best['service']:.0f} | "
            f"{best['service'] / best['contents']:.2f} | {best['service_text']:.0f} | {best['service'] / best['service_text']:.2f} | "
            f"{best['service_call']:.1f} | {best['service'] / (best['contents'] + best['service_call']):.2f} |"
        )
    more.close()
    scratch.cleanup()
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
