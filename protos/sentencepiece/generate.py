"""Regenerate `tokend/engine/sentencepiece/tokend_sentencepiece_model_pb2.py` from the .proto beside this file.

Usage (from the repository root, with grpcio-tools installed, as the test requirements do)::

    python protos/sentencepiece/generate.py          # write the module
    python protos/sentencepiece/generate.py --check  # exit 1 if the committed module is stale (a test runs this)

Separate from protos/generate.py (the gRPC API): this message is a file format the engine parses, not part
of the wire API, and it ships in the service distribution only. protoc's output is written unchanged.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = "tokend_sentencepiece_model.proto"
TARGET = ROOT / "service" / "src" / "tokend" / "engine" / "sentencepiece" / "tokend_sentencepiece_model_pb2.py"


def generate() -> str:
    from grpc_tools import protoc  # imported here: only the generator needs grpcio-tools

    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", f"-I{HERE}", f"--python_out={tmp}", PROTO]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed: {' '.join(args)}")
        return (Path(tmp) / TARGET.name).read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed module is stale")
    args = parser.parse_args()
    fresh = generate()
    if not args.check:
        TARGET.write_text(fresh)
        return 0
    have = TARGET.read_text() if TARGET.exists() else ""
    if have == fresh:
        return 0
    sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), fresh.splitlines(True), str(TARGET), "generated"))
    print("the generated module is stale: run `python protos/sentencepiece/generate.py`", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
