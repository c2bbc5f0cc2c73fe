"""Render turns beside spinning chat templates: what a legitimate chat and a CountTokens wait.

    python -m bench render-turns inprocess [--spinners 7] [--messages 64]
    python -m bench render-turns server [--clients 16]

*inprocess*: a Qwen3 chat (Qwen3-0.6B's template, `--messages` turns, one tool, per-message spans:
`count_chat`) rendered 5 times beside `--spinners` threads whose renders spin until released, at a 1 ms
switch interval as in a worker; prints each run's wall time and outcome.
*server*: `tokend serve` (1 worker, tests/support's chat registry) beside `--clients` threads that each send
a spinning CountChatTokens ("spin": the template loops until its 1 s) one after another; prints 12
CountTokens latencies (p50, min, max), the spinning calls' status codes, and 8 legitimate 64-message
CountChatTokens with a tool (latency, status).
Run the two builds alternating (PYTHONPATH); the machine's other load moves every number (docs/decisions.md,
"Render turns to the request that held them least, merged").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_HELD_SPIN = ("{% for i in range(100000) %}{% for j in range(100000) %}{% if release|length %}{{ raise_exception('released') }}"
              "{% endif %}{% endfor %}{% endfor %}")
_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "weather",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def _in_process(spinners: int, message_count: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # noqa: F401  (offline model files)
    from chat.hf_tokenizers import tokend_encoding
    from chat.templates import packaged_template

    from tokend.errors import ChatTemplateError
    from tokend.registry.chat import ChatEncoder, build_chat_format, chat_format_from_template
    from tokend.registry.chat.sandbox import TemplateLimits, compile_template, render_template
    from tokend.registry.chat.template_limits import TemplateClock

    sys.setswitchinterval(0.001)
    template = chat_format_from_template(packaged_template("Qwen-Qwen3-0.6B.jinja"), eos_token="<|im_end|>", pad_token="<|endoftext|>")
    encoder = ChatEncoder(tokend_encoding("qwen3"), build_chat_format(template))
    messages = [{"role": ("user", "assistant")[k % 2], "content": f"message number {k} with some words in it"} for k in range(message_count)]

    def one_chat() -> tuple[float, str]:
        started = time.monotonic()
        try:
            encoder.count_chat(messages, [_TOOL], True, limits=TemplateLimits(seconds=1.0, clock=TemplateClock()))
            outcome = "ok"
        except ChatTemplateError as error:
            outcome = error.reason
        return (time.monotonic() - started) * 1000, outcome

    one_chat()  # warm
    spin, release = compile_template(_HELD_SPIN), []

    def spinner() -> None:
        try:
            render_template(spin, {"release": release}, TemplateLimits(seconds=120.0, clock=TemplateClock()))
        except ChatTemplateError:
            pass

    threads = [threading.Thread(target=spinner) for _ in range(spinners)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    runs = [one_chat() for _ in range(5)]
    release.append(1)
    for thread in threads:
        thread.join()
    times = sorted(ms for ms, _ in runs)
    print(f"spinners={spinners} messages={message_count} median={statistics.median(times):.0f} ms "
          f"range={times[0]:.0f}-{times[-1]:.0f}", [f"{ms:.0f}:{outcome}" for ms, outcome in runs])


def _server(clients: int) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    import grpc
    from support.chat_models import build_chat_registry
    from support.server import TokendServer

    from tokend_api.v1 import tokenizer_pb2 as pb

    spin = pb.ChatConversation(messages=[pb.ChatMessage(role="user", text="spin")])
    legit = pb.ChatConversation(
        messages=[pb.ChatMessage(role=("user", "assistant")[k % 2], text=f"message number {k} with words") for k in range(64)],
        tools_json='[{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]',
        add_generation_prompt=True,
    )
    with tempfile.TemporaryDirectory() as scratch, TokendServer(registry=build_chat_registry(Path(scratch) / "registry")) as server:
        senders, probe = [server.stub() for _ in range(4)], server.stub()
        probe.CountTokens(pb.CountTokensRequest(model="templated", inputs=[pb.Input(text="warm")]), timeout=30)
        stop, codes = threading.Event(), {}

        def send(index: int) -> None:
            while not stop.is_set():
                try:
                    senders[index % 4].CountChatTokens(pb.CountChatTokensRequest(model="templated", conversations=[spin]), timeout=10)
                    code = "OK"
                except grpc.RpcError as error:
                    code = error.code().name
                codes[code] = codes.get(code, 0) + 1

        threads = [threading.Thread(target=send, args=(index,)) for index in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        waits = []
        for _ in range(12):
            started = time.monotonic()
            probe.CountTokens(pb.CountTokensRequest(model="templated", inputs=[pb.Input(text="probe")]), timeout=30)
            waits.append(time.monotonic() - started)
            time.sleep(0.2)
        chats = []
        for _ in range(8):
            started = time.monotonic()
            try:
                probe.CountChatTokens(pb.CountChatTokensRequest(model="templated", conversations=[legit]), timeout=30)
                code = "OK"
            except grpc.RpcError as error:
                code = error.code().name
            chats.append((round((time.monotonic() - started) * 1000), code))
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join()
    waits.sort()
    print(f"clients={clients} CountTokens p50={statistics.median(waits) * 1000:.0f} ms min={waits[0] * 1000:.0f} "
          f"max={waits[-1] * 1000:.0f}", codes, "64-message chat:", chats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench render-turns")
    parser.add_argument("where", choices=("inprocess", "server"))
    parser.add_argument("--spinners", type=int, default=7)
    parser.add_argument("--messages", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args(argv)
    if args.where == "inprocess":
        _in_process(args.spinners, args.messages)
    else:
        _server(args.clients)
    return 0
