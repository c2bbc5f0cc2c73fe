"""A SentencePiece BPE model with UNUSED pieces merges its whole normalized sentence at once (sentencepiece's rule for
splitting such pieces again), holding more than the ordinary merge's 20 bytes a byte: 1 MiB of letters took +39 MiB
against 20 reserved (docs/decisions.md, hostile23). The reservation now covers the peak (``working_text_weight``),
measured as the high-water mark of a fresh process's resident memory; the count stays sentencepiece's. Linux only
(/proc/self/clear_refs resets the mark)."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from tests.engine.sentencepiece.models import model_bytes, oracle
from tokend.registry import Registry

# 1 MiB of letters: the normalized sentence (the dummy "▁" added) just past 2**20 symbols, where the core's arrays
# have doubled once more (the worst point measured: +37 MiB)
TEXT = "".join(random.Random(24).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(1 << 20))

CHILD = """
import json, sys
from tokend.registry import Registry
from tokend.service import Limits, ServedModels, TokenizerService, recording
from tokend.service.admission import WorkAdmission

def high_water():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))

admission = WorkAdmission(1 << 30)
service = TokenizerService(ServedModels(Registry.open(sys.argv[1])), Limits(), admission=admission)
text = open(sys.argv[2], encoding="utf-8").read()
with recording():
    service.count("unused", ["warm up"])
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the high-water mark starts again from what is resident now
before = high_water()
with recording():
    counted = service.count(sys.argv[3], [text])
    held = admission.held_bytes
print(json.dumps({"peak": high_water() - before, "held": held, "count": counted.total}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_a_model_with_unused_pieces_reserves_what_its_whole_sentence_merge_holds(tmp_path):
    registry = Registry.open(tmp_path / "models", create=True)
    registry.publish("unused", payload=model_bytes("unused"), payload_format="sentencepiece_model",
                     provenance={"kind": "imported"})
    (tmp_path / "text.txt").write_text(TEXT, encoding="utf-8")
    run = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "models"), str(tmp_path / "text.txt"), "unused"],
                         capture_output=True, text=True, timeout=300, check=True)
    found = json.loads(run.stdout)
    assert found["count"] == len(oracle("unused").encode(TEXT))
    assert found["peak"] > 16 << 20  # the merge really ran on the whole sentence
    assert found["peak"] <= found["held"], found  # before: +33-37 MiB against 20 MiB reserved
