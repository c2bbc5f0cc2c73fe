"""Hostile tekken.json files (issue 13): every size-like field is bounded before anything is made from it, and
every malformed field is a ModelFormatError naming it (never a TypeError, KeyError or OverflowError)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tokend.errors import ModelFormatError
from tokend.registry.payload_formats import parse_payload

REPO_ROOT = Path(__file__).resolve().parents[2]


def _tekken(vocab_entries: int = 256, **config) -> dict:
    vocab = [{"rank": rank, "token_bytes": base64.b64encode(bytes([rank])).decode()} for rank in range(256)]
    vocab += [{"rank": rank, "token_bytes": base64.b64encode(b"t%d" % rank).decode()} for rank in range(256, vocab_entries)]
    return {"config": {"pattern": r"\S+|\s+", "default_vocab_size": vocab_entries + 1000,
                       "default_num_special_tokens": 1000, "version": "v7", **config},
            "vocab": vocab, "special_tokens": [{"rank": 0, "token_str": "<unk>", "is_control": True}]}


_MEASURE = """
import resource, sys
from tokend.errors import ModelFormatError
from tokend.registry.payload_formats import parse_payload
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    parse_payload("tekken_json", data, name="hostile")
    message = "loaded"
except ModelFormatError as error:
    message = str(error)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)  # KiB on Linux
print(message)
"""


def test_four_million_special_slots_are_refused_before_they_are_made(tmp_path):
    # A 122 KB file asking for 4,000,000 special-token slots made 1.08 GB of filler tokens before refusing.
    document = _tekken(4000, default_num_special_tokens=4_000_000, default_vocab_size=4_004_000)
    path = tmp_path / "tekken.json"
    path.write_text(json.dumps(document))
    assert 100_000 < path.stat().st_size < 300_000
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, sys.path))}
    completed = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, env=env,
                               timeout=120, check=True)
    growth_kib, message = completed.stdout.splitlines()[:2]
    assert int(growth_kib) < 64 * 1024, f"peak memory grew {int(growth_kib) // 1024} MiB"
    assert "config.default_num_special_tokens = 4000000" in message


@pytest.mark.parametrize(
    "change, named",
    [
        ({"special_tokens": [{"rank": "a", "token_str": "x"}, {"rank": 1, "token_str": "y"}]}, "special_tokens[0]"),
        ({"special_tokens": [{"rank": 0, "token_str": "x"}, 5]}, "special_tokens[1]"),
        ({"special_tokens": [{"rank": 0}]}, "special_tokens[0]"),
        ({"special_tokens": [{"rank": 0, "token_str": ["x"]}]}, "special_tokens[0]"),
        ({"config": {**_tekken()["config"], "pattern": ["a"]}}, "config.pattern"),
    ],
)
def test_malformed_fields_are_model_format_errors_naming_them(change, named):
    data = json.dumps({**_tekken(), **change}).encode()
    with pytest.raises(ModelFormatError, match=named.replace("[", r"\[").replace("]", r"\]")):
        parse_payload("tekken_json", data, name="hostile")


@pytest.mark.parametrize("field", ["default_vocab_size", "default_num_special_tokens"])
def test_an_infinite_size_is_a_model_format_error_naming_it(field):
    data = json.dumps(_tekken()).replace(f'"{field}": ', f'"{field}": Infinity, "was": ').encode()
    with pytest.raises(ModelFormatError, match=field):
        parse_payload("tekken_json", data, name="hostile")


def test_deep_nesting_is_a_model_format_error():
    with pytest.raises(ModelFormatError, match="nests too deeply"):
        parse_payload("tekken_json", b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", name="hostile")
