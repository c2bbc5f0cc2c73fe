"""`tokend truncate` and `tokend chunk`, run as a user would (the console script in a subprocess): text from
stdin, --text or --file; JSON out (or the kept text with --plain, or one chunk per line with --jsonl); errors
as one line on stderr with exit status 1. tiktoken checks the ids; the cuts are the engine's (whose semantics
tests/engine/test_budget*.py prove)."""

from __future__ import annotations

import json

import pytest
import tiktoken

import tokend

from .test_cli import ALICE, fails, ok

TEXT = "The quick brown fox jumps over the lazy dog.\n\nA second paragraph. It has two sentences."


@pytest.fixture(scope="module")
def oracle():
    return tiktoken.get_encoding("cl100k_base")


def test_truncate_from_stdin_as_json_and_plain(oracle):
    for side in ("right", "left"):
        result = json.loads(ok("truncate", "--max-tokens", "5", "--side", side, "--model", "cl100k_base", stdin=TEXT))
        expected = tokend.get_encoding("cl100k_base").truncate(TEXT, 5, side)
        assert (result["text"], result["start"], result["end"], result["ids"]) == (
            expected.text, expected.start, expected.end, expected.ids)
        assert result["ids"] == oracle.encode(result["text"]) and result["token_count"] <= 5
        assert result["total_tokens"] == len(oracle.encode(TEXT)) and result["truncated"] is True
        # the latest version answers: @2 (the ranks of @1 with the openai-chat format)
        assert result["model"] == {"name": "cl100k_base", "version": 2}
    plain = ok("truncate", "-n", "5", "--model", "cl100k_base", "--plain", stdin=TEXT)
    assert plain == tokend.get_encoding("cl100k_base").truncate(TEXT, 5).text  # exact: no newline added


def test_chunk_from_a_file_as_json_and_jsonl(tmp_path, oracle):
    document = tmp_path / "alice.txt"
    text = ALICE.read_text(encoding="utf-8")[:20_000]
    document.write_text(text, encoding="utf-8")
    arguments = ("chunk", "--max-tokens", "200", "--overlap", "20", "--prefer", "sentence", "--model", "cl100k_base",
                 "--file", str(document))  # fmt: skip
    result = json.loads(ok(*arguments))
    expected = tokend.get_encoding("cl100k_base").chunk(text, 200, 20, "sentence")
    assert [(c["text"], c["start"], c["end"], c["ids"]) for c in result["chunks"]] == [
        (c.text, c.start, c.end, c.ids) for c in expected]
    assert all(chunk["ids"] == oracle.encode(chunk["text"]) and chunk["token_count"] <= 200 for chunk in result["chunks"])
    lines = ok(*arguments, "--jsonl").splitlines()
    assert [json.loads(line) for line in lines] == result["chunks"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        (("truncate", "-n", "-1", "--text", "x"), "max_tokens must be >= 0"),
        (("chunk", "-n", "2", "--text", "🧪"), "use max_tokens >= 3"),
        (("chunk", "-n", "2", "--overlap", "2", "--text", "x"), "overlap must be >= 0 and below max_tokens"),
        (("chunk", "-n", "2", "--text", "a<|endoftext|>"), "--allowed-special"),
        (("truncate", "-n", "2", "--file", "/nonexistent/text.txt"), "/nonexistent/text.txt"),
    ],
)
def test_errors_are_one_line_and_exit_1(arguments, message):
    stderr = fails(1, *arguments, "--model", "cl100k_base")
    assert message in stderr and stderr.count("\n") == 1


def test_special_tokens_as_in_encode(oracle):
    result = json.loads(ok("chunk", "-n", "3", "--allowed-special", "all", "--text", "a<|endoftext|>b", "--model", "cl100k_base"))
    assert [chunk["ids"] for chunk in result["chunks"]] == [oracle.encode("a<|endoftext|>b", allowed_special="all")]
    ordinary = json.loads(ok("truncate", "-n", "2", "--ordinary", "--text", "<|endoftext|>", "--model", "cl100k_base"))
    assert ordinary["ids"] == oracle.encode(ordinary["text"], disallowed_special=())


def test_bad_usage_exits_2():
    assert "--max-tokens" in fails(2, "truncate", "--model", "cl100k_base", "--text", "x")
    assert "invalid choice" in fails(2, "chunk", "-n", "3", "--prefer", "chapter", "--model", "cl100k_base", "--text", "x")
