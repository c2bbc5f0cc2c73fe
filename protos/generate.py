"""Regenerate the Python gRPC stubs from `protos/` into the `tokend-api` distribution (the only copy).

Usage (from the repository root, with grpcio-tools installed)::

    python protos/generate.py          # write the stubs
    python protos/generate.py --check  # exit 1 if the committed stubs are stale

The generated modules live in `api/src/tokend_api/v1/`; the server (`tokend`) and the client
(`tokend-client`) both import them from there. protoc writes absolute imports
(`from tokend.v1 import tokenizer_pb2`), which would collide with the `tokend` package itself; we rewrite
that one import to a relative one. The stubs' `GRPC_GENERATED_VERSION` (the grpcio they demand at import) is
set to the least grpcio `tokend-api` declares (api/pyproject.toml), not the generating grpcio-tools' own:
the stubs then do not change with whichever grpcio-tools a fresh install picks, and demand what the
distribution promises. These two rewrites are the only changes made to protoc's output.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PROTO_FILES = ["tokend/v1/tokenizer.proto"]
TARGETS = [ROOT / "api" / "src" / "tokend_api" / "v1"]
INIT_TEXT = '"""Generated from protos/tokend/v1 by `python protos/generate.py`. Do not edit."""\n'
_ABSOLUTE_IMPORT = re.compile(r"^from tokend\.v1 import (\w+_pb2) as", re.MULTILINE)
_GENERATED_VERSION = re.compile(r"^GRPC_GENERATED_VERSION = '[^']*'$", re.MULTILINE)


def least_grpcio() -> str:
    """The least grpcio version `tokend-api` depends on ("grpcio>=X" in api/pyproject.toml)."""
    found = re.search(r'"grpcio>=([0-9.]+)"', (ROOT / "api" / "pyproject.toml").read_text())
    if found is None:
        raise SystemExit('api/pyproject.toml declares no "grpcio>=X" dependency')
    return found.group(1)


def generate_into(out_dir: Path) -> None:
    """Run protoc for every proto file, writing flat modules into `out_dir`."""
    from grpc_tools import protoc  # imported here: only the generator needs grpcio-tools

    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *PROTO_FILES,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed: {' '.join(args)}")
        out_dir.mkdir(parents=True, exist_ok=True)
        for generated in sorted((Path(tmp) / "tokend" / "v1").glob("*")):
            text = _ABSOLUTE_IMPORT.sub(r"from . import \1 as", generated.read_text())
            text = _GENERATED_VERSION.sub(f"GRPC_GENERATED_VERSION = '{least_grpcio()}'", text)
            (out_dir / generated.name).write_text(text)
        (out_dir / "__init__.py").write_text(INIT_TEXT)


def check() -> int:
    """Compare freshly generated stubs with the committed ones; print a diff when stale."""
    stale = False
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "fresh"
        generate_into(fresh)
        for target in TARGETS:
            names = {p.name for p in fresh.iterdir()} | (
                {p.name for p in target.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}}
                if target.exists()
                else set()
            )
            for name in sorted(names):
                want = (fresh / name).read_text() if (fresh / name).exists() else ""
                have = (target / name).read_text() if (target / name).exists() else ""
                if want != have:
                    stale = True
                    sys.stdout.writelines(
                        difflib.unified_diff(
                            have.splitlines(True), want.splitlines(True), str(target / name), "generated"
                        )
                    )
    if stale:
        print("generated stubs are stale: run `python protos/generate.py`", file=sys.stderr)
    return 1 if stale else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed stubs are stale")
    args = parser.parse_args()
    if args.check:
        return check()
    for target in TARGETS:
        generate_into(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
