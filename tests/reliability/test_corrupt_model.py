"""A model version corrupted on disk under load: refused from then on, every other version keeps serving.

Registry (a real directory under tmp_path): cl100k_base@1, cl100k_base@2 (the same ranks, fewer
special tokens — a different published version) and o200k_base@1, all three loaded before SERVING,
hot reload every 0.5 s. Client threads keep encoding with cl100k_base@2, o200k_base@1 and the
unpinned "cl100k_base" (latest = 2), checking every answer against tiktoken, while one thread keeps
asking for cl100k_base@1. Then one byte in the middle of cl100k_base@1's rank file is flipped.

Required: every worker's next refresh re-verifies the loaded version, finds the checksum wrong and
refuses it — FAILED_PRECONDITION naming it (the model on the registry is broken; not INTERNAL, not
a silent answer from the bad file) — on every connection; the other versions see no failed call.
"""

from __future__ import annotations

import stat
import threading
import time
from collections import Counter

import grpc
import tiktoken
from support.registries import build_registry, publish_openai
from support.server import start_server

from reliability.load import GoldenTexts, LoadThreads
from tokend_api.v1 import tokenizer_pb2 as pb

REFUSED = "FAILED_PRECONDITION"


def _corrupt_payload(version_dir) -> str:
    """Flip one byte in the middle of the version's payload file; returns the file name."""
    payload = next(path for path in sorted(version_dir.iterdir()) if path.name != "manifest.json")
    payload.chmod(payload.stat().st_mode | stat.S_IWUSR)
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    return payload.name


def test_corrupted_version_is_refused_and_the_others_keep_serving(tmp_path, golden: GoldenTexts) -> None:
    from tokend.registry import Registry

    root = build_registry(tmp_path / "registry", ["cl100k_base", "o200k_base"])
    publish_openai(Registry.open(root), "cl100k_base", special_tokens={"<|endoftext|>": 100257})
    oracle = tiktoken.get_encoding("cl100k_base")
    texts = golden.texts[:60]
    expected = {
        "cl100k_base@2": [oracle.encode_ordinary(text) for text in texts],
        "cl100k_base": [oracle.encode_ordinary(text) for text in texts],
        "o200k_base@1": [tiktoken.get_encoding("o200k_base").encode_ordinary(text) for text in texts],
    }
    with start_server(
        registry=root, workers=2, metrics=False, reload_interval=0.5,
        models=["cl100k_base@1", "cl100k_base@2", "o200k_base@1"],
    ) as server:  # fmt: skip
        stubs = [server.stub(server.channel(**{"grpc.use_local_subchannel_pool": 1})) for _ in range(8)]
        healthy_refs = list(expected)

        def healthy(thread: int, index: int) -> None:
            ref = healthy_refs[(index + thread) % len(healthy_refs)]
            position = (index * 5 + thread) % len(texts)
            request = pb.EncodeRequest(model=ref, inputs=[pb.Input(text=texts[position])])
            response = stubs[(index + thread) % len(stubs)].Encode(request, timeout=30)
            assert list(response.results[0].ids) == expected[ref][position], f"{ref} text {position}"
            assert response.model.version == (1 if ref == "o200k_base@1" else 2)

        probe_codes: list[tuple[float, str, str]] = []  # (time, code, message) of cl100k_base@1 calls
        stop_probe = threading.Event()

        def probe() -> None:
            index = 0
            while not stop_probe.is_set():
                request = pb.CountTokensRequest(model="cl100k_base@1", inputs=[pb.Input(text="hello world")])
                try:
                    stubs[index % len(stubs)].CountTokens(request, timeout=30)
                    probe_codes.append((time.monotonic(), "OK", ""))
                except grpc.RpcError as error:
                    probe_codes.append((time.monotonic(), error.code().name, error.details()))
                index += 1
                time.sleep(0.01)

        load = LoadThreads(healthy, threads=3).start()
        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        try:
            time.sleep(1.0)
            assert probe_codes and all(code == "OK" for _, code, _ in probe_codes), probe_codes[:3]
            corrupted_file = _corrupt_payload(root / "cl100k_base" / "1")
            corrupted_at = time.monotonic()
            # Refused on every connection (so by both workers): 40 refusals in a row, within 30 s.
            deadline = corrupted_at + 30
            while True:
                recent = [code for _, code, _ in probe_codes[-40:]]
                if len(recent) == 40 and all(code == REFUSED for code in recent):
                    break
                assert time.monotonic() < deadline, f"cl100k_base@1 still served 30 s after corruption: {Counter(recent)}"
                time.sleep(0.1)
            refused_after = min(t for t, code, _ in probe_codes if code == REFUSED) - corrupted_at
            time.sleep(1.0)  # and the others keep serving for a while after the refusal
        finally:
            stop_probe.set()
            prober.join(30)
            load.stop_and_join()

    after = [(code, message) for t, code, message in probe_codes if t > corrupted_at]
    codes = Counter(code for code, _ in after)
    # Before each worker's refresh noticed, it answered from the (verified) copy in its memory.
    assert set(codes) <= {"OK", REFUSED}, f"cl100k_base@1 after corruption: {dict(codes)}"
    first_refusal = next(message for code, message in after if code == REFUSED)
    assert "cl100k_base@1" in first_refusal, first_refusal
    # Once refused, never served again (the workers do not reload the broken file).
    last_ok = max((t for t, code, _ in probe_codes if code == "OK"), default=0.0)
    first_all_refused = probe_codes[-40][0]
    assert last_ok < first_all_refused
    assert load.failures == [], f"{len(load.failures)} calls to healthy versions failed: " + "\n".join(load.failures[:5])
    assert load.completed > 100
    print(f"corrupted {corrupted_file}: first refusal after {refused_after:.2f} s ({first_refusal!r}); "
          f"healthy calls during the test: {load.completed}, none failed")  # fmt: skip
